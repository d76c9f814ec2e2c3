// Public XML API (#xml).
export { XmlElement, EMPTY_ATTRS, EMPTY_CHILDREN, type XmlNode } from './element.ts';
export { x, adopt, type XmlChild } from './build.ts';
export { serialize, escapeText, escapeAttr } from './serialize.ts';
export {
  XmlStreamParser, DEFAULT_LIMITS,
  type StreamParserLimits, type StreamParserHandlers, type StreamHeader,
} from './parser.ts';
export { parseElement } from './parse.ts';
