// Loading the configuration: YAML file -> overrides -> schema validation -> absolute paths.
//
// All problems are reported at once in one ConfigError; each names the key (and, for files,
// the line and column), so an operator fixes the file in one pass.

import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import { devCertPaths } from '../tls/devcert.ts';
import { ConfigError, configErrorMap, issuesFromZod, type ConfigIssue } from './errors.ts';
import { ConfigSchema, type Config, type ConfigInput } from './schema.ts';

export { ConfigError, type ConfigIssue } from './errors.ts';
export type { Config, ConfigInput } from './schema.ts';

type DeepPartial<T> = T extends readonly unknown[]
  ? T
  : T extends object
    ? { [K in keyof T]?: DeepPartial<T[K]> }
    : T;

/** Settings applied over the file before validation (CLI flags, tests). Lists replace, mappings merge. */
export type ConfigOverrides = DeepPartial<ConfigInput>;

/**
 * Reads, validates and completes the YAML config `file`. Relative paths in it are resolved
 * against the file's directory. Throws ConfigError listing every problem.
 */
export async function loadConfig(file: string, overrides?: ConfigOverrides): Promise<Config> {
  const absFile = resolve(file);
  let text: string;
  try {
    text = await readFile(absFile, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (err as Error).message;
    throw new ConfigError([{ path: '', message: `cannot read ${file}: ${reason}` }], file);
  }

  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true, merge: false });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        const where = pos ? `${file}:${pos.line}:${pos.col}` : file;
        const message = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
        return { path: '', message: `${where}: YAML syntax error: ${message}`, location: where };
      }),
      file,
    );
  }

  let raw: unknown = doc.toJS({ maxAliasCount: 100 });
  if (raw === null || raw === undefined) raw = {}; // empty file: report the missing keys
  if (overrides) raw = deepMerge(raw, overrides);

  const locate = (path: readonly PropertyKey[]) => {
    const offset = findOffset(doc, path);
    if (offset === undefined) return undefined;
    const { line, col } = lineCounter.linePos(offset);
    return `${file}:${line}:${col}`;
  };
  return validate(raw, dirname(absFile), file, locate);
}

/** Validates an already parsed config object; relative paths are resolved against `baseDir`. */
export function parseConfig(raw: unknown, baseDir: string): Config {
  return validate(raw, baseDir, undefined, undefined);
}

/**
 * Development defaults for `amsel start --dev`: host `localhost`, everything under `dataDir`,
 * listeners on loopback only, the dev certificate (created by `ensureDevCert` in
 * src/tls/devcert.ts), readable logs.
 */
export function devConfig(dataDir: string): Config {
  const dir = resolve(dataDir);
  const files = devCertPaths(dir, 'localhost');
  const loopback = ['127.0.0.1'];
  return parseConfig(
    {
      hosts: ['localhost'],
      dataDir: dir,
      tls: { certificates: [{ cert: files.certFile, key: files.keyFile }] },
      listeners: { c2s: { address: loopback }, c2sDirectTls: { address: loopback }, s2s: { enabled: false, address: loopback } },
      log: { level: 'debug', format: 'pretty' },
    },
    dir,
  );
}

function validate(
  raw: unknown,
  baseDir: string,
  source: string | undefined,
  locate: ((path: readonly PropertyKey[]) => string | undefined) | undefined,
): Config {
  const result = ConfigSchema.safeParse(raw, { error: configErrorMap, reportInput: true });
  if (!result.success) {
    const issues: ConfigIssue[] = issuesFromZod(result.error, ConfigSchema).map((i) => {
      const location = locate?.(i.keyPath);
      return location ? { path: i.path, message: i.message, location } : { path: i.path, message: i.message };
    });
    throw new ConfigError(issues, source);
  }
  return resolvePaths(result.data, baseDir);
}

/** Makes every path setting absolute (relative to the config file's directory). */
function resolvePaths(c: Config, baseDir: string): Config {
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  return {
    ...c,
    dataDir: abs(c.dataDir),
    storage: c.storage.type === 'sqlite' ? { ...c.storage, path: abs(c.storage.path) } : c.storage,
    tls: {
      ...c.tls,
      certificates: c.tls.certificates.map((e) => ({ cert: abs(e.cert), key: abs(e.key) })),
      ...(c.tls.dhParam !== undefined ? { dhParam: abs(c.tls.dhParam) } : {}),
    },
  };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function deepMerge(base: unknown, over: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(over)) return over === undefined ? base : over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v !== undefined) out[k] = deepMerge(base[k], v);
  }
  return out;
}

/**
 * Offset of the YAML node at `path`: the key of the last existing mapping entry on the path
 * (for unknown keys and wrong values alike, the key is where the eye goes), or the deepest
 * existing node when the path runs out (missing keys).
 */
function findOffset(doc: Document, path: readonly PropertyKey[]): number | undefined {
  let node: Node | null | undefined = doc.contents as Node | null;
  let offset = node?.range?.[0];
  for (const step of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && p.key.value === step);
      if (!pair) return offset;
      const keyNode = pair.key as Node;
      offset = keyNode.range?.[0] ?? offset;
      node = pair.value as Node | null;
    } else if (isSeq(node) && typeof step === 'number') {
      const item = node.items[step] as Node | undefined;
      if (!item) return offset;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else {
      return offset;
    }
  }
  return offset;
}
