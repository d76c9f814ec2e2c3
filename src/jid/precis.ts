/**
 * PRECIS (RFC 8264) string classes and the profiles XMPP addresses need (RFC 8265, RFC 7622).
 *
 * - IdentifierClass / FreeformClass derived properties are computed per code point from Node's
 *   own Unicode data (regex property escapes, String#normalize), so they follow Node's Unicode
 *   version; results are memoised in a lazily allocated 1.1 MB Uint8Array.
 * - The Bidi Rule (RFC 5893) needs Bidi_Class and the CONTEXTJ rule for ZWNJ needs Joining_Type;
 *   JavaScript exposes neither, so both are embedded below as run-length tables generated from
 *   UCD 15.0.0. Code points assigned after 15.0 get the UCD default for their block (which is R/AL
 *   for the right-to-left blocks), and nonspacing/enclosing marks default to NSM / Joining_Type T.
 * - Canonical_Combining_Class == Virama (CONTEXTJ) is probed with canonical reordering (NFD), so
 *   it needs no table and follows Node's Unicode version.
 *
 * Profiles: UsernameCaseMapped (RFC 8265 §3.3) for localparts, OpaqueString (RFC 8265 §4.2) for
 * resourceparts and passwords. Both have an all-ASCII fast path.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { domainToASCII, domainToUnicode } from 'node:url';

/** Thrown for every invalid JID or JID part. `reason` is a short stable phrase; `message` may add detail. */
export class JidError extends Error {
  readonly reason: string;
  constructor(reason: string, detail?: string) {
    super(detail ? `${reason}: ${detail}` : reason);
    this.name = 'JidError';
    this.reason = reason;
  }
}

/** Maximum length of each JID part, in UTF-8 octets (RFC 7622 §3.2–3.4). */
export const MAX_PART_OCTETS = 1023;
// No prepared part of <= 1023 octets can come from more than 4 * 1023 UTF-16 code units (NFC
// composes at most 4 code points into one of >= 3 octets), so longer input is rejected up front.
const MAX_INPUT_UNITS = 4 * MAX_PART_OCTETS;

// ---- Generated from the Unicode Character Database 15.0.0 (Debian package unicode-data) ----
// Run-length tables: each run is <distance from the previous run start, lower-case base 36><value, upper-case letter A=0, B=1, ...>.
// Bidi_Class: A=L B=R C=AL D=AN E=EN F=ES G=CS H=ET I=ON J=BN K=NSM L=other (B S WS LRE LRO RLE RLO PDF LRI RLI FSI PDI)
const BIDI_RUNS =
  '0J9L5JeL5I2H3I5F1G1F1G2EaG1I6AqI6AqI4J6L1JqG1I1H4I4A1I2J1I2H2E2I1A1I3E1A1I5AnI1AvI1AchI2A7IeA2IeA5I9' +
  'A1IhK34A4I2A8I1A5I2A1I1A32I1A3wK7A74I1A2I2H1B1K19B1K1B1K2B1K2B1K1B1kD6I2C1H2C1G1C1I2KbC1cKlDaH1D2C3K' +
  '1C2tK7D1I1K6C2K2I1K4C2EaCnK1CuKrC2jKbCfB17K9B2I4B3K1BoK4B1K9B1K3B1K5B17K3B4C1cD2C6K8C16KoD1KwA1jK1A1' +
  'K1A4K8A4K1A3K7AaK2AtK1A1mK1A4K4A8K1AkK2AeH2A7H1A2K1A2K2A1lK1A4K2A4K2A2K3A3K1AuK2A3K1AbK2A1lK1A4K5A1K' +
  '2A4K1AkK2AdH1A8K6A1K1A1mK1A2K1A1K4A8K1A7K2AbK2AuK1A1pK1AcK1A11I6H1I1A5K1A3K1A1jK1A1K3A5K3A1K4A7K2AbK' +
  '2AkI7A2K1A1mK1AfK2AkK2AsK2A1lK2A4K4A8K1AkK2AtK1A20K1A7K3A1K1A2iK1A2K7A4H1A7K8A2qK1A2K9AbK7A21K2ArK1A' +
  '1K1A1K1I4A1fKeA1K5A1K2A5KbA1K10A9K1A2uK4A1K6A1K2A2K2ApK2A4K3AgK4AdK1A2K2A6K1AfK1AjjK3A1cIaA2uI1AhrL1' +
  'AqI2A39K3AtK2AuK2AuK2A1sK2A1K7A8K1A2KbA7H1A1K1AiIaA6IbK3J1K1A39K2AyK1A3aK3A4K2A9K1A6K3A4I1A3I2A48IyA' +
  'nK2A2K1A1mK1A1K7A1K1A1K1A2K8A6KaA2K1A1cKvA1dK4A1cK1A1K5A1K1A5K1A14K9AcK2AwK4A2K2A1K3A1kK1A1K2A3K1A1K' +
  '3A1mK8A2K2A48K3A1KdA1K7A4K1A6K1A3K2A5iK1sAcdI1A1I3AbI3AdI3AdI3AdI2A1LbJ3A1B1IoL7G1H5IfG1IqL1J6L4J6E1' +
  'A3E6F2I3A1EaF2I3AhH1cKxAfI2A1I4A1I2AaI1A1I3A5I6A1I1A1I1A1I1A4H1AbI2A4I5A5I4A2IgA15I3A4I3mF1H1I82A1xI' +
  'qA1I41ApIbAlI14EkA26IciA1I9fA74IhgA2IwA1I2xA6dI6A4K3A7I7A3jK1A2oKwI2mAyIqA1I2hAcI5yAqIcA4L1I4A3IpA9K' +
  '4A2I1A5I2A5I3A2hK2I2A3I1A2iI1A5gI10A1lI2A1dIgAsI3A1eIfAcI4A4nI4A2rI2AvI1A534I1sAh3kI1jA92I3A2nK4I1Ka' +
  'I2AuK2A28K2AeIyA2uI1A3dK1A3K1A4K1ApK2A1I4K1AbH2A1mI4A24K2AqKiAdK1A12K8ApKbA1aK3A1cK1A2K4A2K2A13K1A1v' +
  'K6A2K2A2K2AcK1A8K1A1bK1A1fK1A1K3A2K2A5K2A1K1A16K2A8K1A37I2A3dK1A2K1A4K1Afn3B1K1BaF1B12CdqIiC3jI1JwCd' +
  'I3KgIaA6KgIwG1I1G1A1I1G1I9H1I2F2I3A1I1H2I1A4C3zJ1A1I2H3I5F1G1F1G2EaG1I6AqI6AqIbA3eH2I3H2A1I7A1J9I5J2' +
  'A75I1A1qI25A3IdA3I1A2kK1A6aK1ErA3eK5Aw5B7zI1B69K3B1K2B5K4B14K3B4K1B4lK2B2aI7BcgC10K4C8DaC6B80DvB18K2' +
  'BjC1pK3B1cCmKbCvBiK4B3eA1K1A1iKfAbIkAaK1A2K2AaK3A1dK4A2K2A7K1A1pK3A10K5A1K8A1qK1AcK2A1gK9AaK4A2K1A2n' +
  'K3A2K1A1K2A6K1A2K1A4dK1A3K8AlK2A1lK2A3K1A11K7A3K5A5fK8A2K3A1K1AnK1A2cK6A1K1A4K2A1K2A6mK4A6K2A1K2ArK2' +
  'A2dK8A2K1A1K2AvIdA1qK1A1K1A2K6A1K1A2tK3A2K4A1K5A77K9A1K2A74K2A1K1A4K1A40K4A2K2A4K1AwK6A2K2A14K6A2K4A' +
  '8K1A9K6A2K3A1aKdA1K2AbaK7A1K6A2cKmA2K7A1K2A1K2A3eK6A3K1A1K2A1K7A1K1A20K2A3K1A1K1A9nK2AbK2A1gK5A5K1A1' +
  'K1A42I8H4IhA40eK1A6KfAasaK5A1nK7At4K1A1rK4A27I1A1K1Af5kK2A1J4A3mkK1aA2KnAf4K3A9J8K8A2K7AuK4A1nI2AlI1' +
  'uK3I1A56I2fAp0I1A1lI1A1lI1A1lI1A1lI1AaE1eAe8K1jA4K1eA8K1AeK1AmK5A1KfA11sK7A1KhA2K7A1K2A1K5A2sK1A4gK7' +
  'AafK1A1pK4AfH1AdoK4AlsB5sK7B31K7BmdC28B1sC28B4wC6oI2CeB74I18A4I2sAcIfA2IfA1IfA1I11AaEbI5AvI1A1mI6A1p' +
  'I1A4yI6A4aIrcA4IhA3IdA3I3bA4I2nA6IcA4I1AfIcA4I1kA8IaA6I14A8IuA2I2A26I9gAcIeA2IdA3I9A7I1aA1I7A8IeA4I9' +
  'A7I9A7I43A1I1jA11EaAskJ2A1ekeJ2A1ekeJ2A1ekeJ2A1ekeJ2A1ekeJ2A1ekeJ2A1ekeJ2A1ekeJ2A1ekeJ2A1ekeJ2A1ekeJ' +
  '2A1ekeJ76K6oJ2s0A1bemJ2A1ekeJ2A1ekeJ';
// Joining_Type: A=U B=L C=R D=D E=C F=T
const JOINING_RUNS =
  '0A4tF1AgiF34A7nF7A7bF19A1F1A1F2A1F2A1F1A20FbA1F1A3D1A1C4D1C1D1C1D5C4DdE1D7C1D2FlAeD2F1C3A1C3DgCiD12C' +
  '1D2C9D1C1D1C1D2C2A1C1F7A2F6A2F2A1F4C2AaD3A2D1AfF1C1F1D3C5D4C1D9C1D1C1D1C1D2C1FrA2C1DbC3DfC2D4C1D1C2D' +
  '3C2D6A12FbApDxF9A6E1A2F1AoF4A1F9A1F3A1F5AiC1D5C2D1C1DaC1D1C3F3A4D1A1D4A1C1D1C2A5CjE3D1A2D5C1A9F8DaC3' +
  'A1C1D2C2D6C1DfA1FoA1FwA1jF1A1F1A4F8A4F1A3F7AaF2AtF1A1mF1A4F4A8F1AkF2AqF1A2F2A1lF1A4F2A4F2A2F3A3F1AuF' +
  '2A3F1AbF2A1lF1A4F5A1F2A4F1AkF2AmF6A1F1A1mF1A2F1A1F4A8F1A7F2AbF2AuF1A1pF1AcF1A1eF1A3F1A1jF1A1F3A5F3A1' +
  'F4A7F2AbF2AtF1A1mF1A2F1A6F1A5F2AkF2AsF2A1lF2A4F4A8F1AkF2AtF1A20F1A7F3A1F1A2iF1A2F7AcF8A2qF1A2F9AbF7A' +
  '21F2ArF1A1F1A1F1A1jFeA1F5A1F2A5FbA1F10A9F1A2uF4A1F6A1F2A2F2ApF2A4F3AgF4AdF1A2F2A6F1AfF1AjjF3AqaF3AtF' +
  '2AuF2AuF2A1sF2A1F7A8F1A2FbA9F1A15D1A2E1F3A1F1AgD2hAcF2DyF1D1A39F3A4F2A9F1A6F3A63F2A2F1A1mF1A1F7A1F1A' +
  '1F1A2F8A6FaA2F1A1cFvA1dF4A1cF1A1F5A1F1A5F1A14F9AcF2AwF4A2F2A1F3A1kF1A1F2A3F1A1F3A1mF8A2F2A48F3A1FdA1' +
  'F7A4F1A6F1A3F2A5iF1sAejF1A1E1F2AqF5A1dF5A5F6A2oFxA2daF3A3xF1A2oFwAfeF4A2zF2An9wF4A1FaAwF2A28F2A7kF1A' +
  '3F1A4F1ApF2A5F1AjD1eB1A29F2AqFiAdF1A12F8ApFbA1aF3A1cF1A2F4A2F2A13F1A1vF6A2F2A2F2AcF1A8F1A1bF1A1fF1A1' +
  'F3A2F2A5F2A1F1A16F2A8F1A6mF1A2F1A4F1Afn4F1AkhFgAgFgA5rF1A6xF3Ae9F1A6aF1A45F5A1aeF3A1F2A5F4A14F3A4F1A' +
  '3kD5C1A1C1A1C2A2B1C5D4B1D5C1D3C1A2C1F2A4D4C1A40D1C1D1C3D3C1D2C1D1C2D1C1AnC4D2A9dB1DxC1D1F4AarF2A28F3' +
  'A1cD3C1DhA1FbD3C1ArD4C2DcF4A16D1A1D2C3A1D1C2D2C1D2A1D1C2D1A4C1D1B1A1hF1A1iFfA15F1A2F2AaF3A1dF4A2F2A7' +
  'F1A1pF3A10F5A1F8A1qF1AcF2A1gF9AaF4A2F1A2nF3A2F1A1F2A6F1A2F1A4dF1A3F8AlF2A1lF2A3F1A11F7A3F5A5fF8A2F3A' +
  '1F1AnF1A2cF6A1F1A4F2A1F2A6mF4A6F2A1F2ArF2A2dF8A2F1A1F2A2yF1A1F1A2F6A1F1A2tF3A2F4A1F5A77F9A1F2A74F2A1' +
  'F1A4F1A40F4A2F2A4F1AwFaA14F6A2F4A8F1A9F6A2F3A1aFdA1F2AbaF7A1F6A1F1A2aFmA2F7A1F2A1F2A3eF6A3F1A1F2A1F7' +
  'A1F1A20F2A3F1A1F1A9nF2AbF2A1gF5A5F1A1F1A44tFhA6FfAasaF5A1nF7At4F1A1rF4A29F1Af5kF2A1F4A3mkF1aA2FnAf4F' +
  '3A9FgA2F7AuF4A44F3A1izF1jA4F1eA8F1AeF1AmF5A1FfA11sF7A1FhA2F7A1F2A1F5A2sF1A4gF7AafF1A1pF4Ae4F4ArkF7A1' +
  '5D1wF8AgzatF1AuF2oA3kF6oA';
// Nonspacing/enclosing marks whose Bidi_Class is not NSM (UCD 15.0.0)
const MARKS_NOT_NSM = new Set<number>([0x0CBF, 0x0CC6, 0x11A07, 0x11A08, 0x11C3F]);
// ---- End of generated data ----

// ---------------------------------------------------------------------------------------------
// Table decoding and lookups

interface Runs { starts: Uint32Array; values: Uint8Array }

function decodeRuns(enc: string): Runs {
  const starts: number[] = [];
  const values: number[] = [];
  let pos = 0;
  let num = 0;
  for (let i = 0; i < enc.length; i++) {
    const c = enc.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) { // upper-case: value, terminates a run
      pos += num;
      starts.push(pos);
      values.push(c - 0x41);
      num = 0;
    } else {
      num = num * 36 + (c <= 0x39 ? c - 0x30 : c - 0x61 + 10);
    }
  }
  return { starts: Uint32Array.from(starts), values: Uint8Array.from(values) };
}

function lookupRuns(r: Runs, cp: number): number {
  const s = r.starts;
  let lo = 0;
  let hi = s.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (s[mid]! <= cp) lo = mid;
    else hi = mid - 1;
  }
  return r.values[lo]!;
}

let bidiRuns: Runs | undefined;
let joiningRuns: Runs | undefined;

const BC_L = 0, BC_R = 1, BC_AL = 2, BC_AN = 3, BC_EN = 4, BC_NSM = 10, BC_OTHER = 11;
const RE_MARK = /^[\p{Mn}\p{Me}]$/u;

/** Bidi_Class as a BC_* number (see the table legend). */
export function bidiClass(cp: number): number {
  bidiRuns ??= decodeRuns(BIDI_RUNS);
  const bc = lookupRuns(bidiRuns, cp);
  // Marks assigned after UCD 15.0 read as L from the table; real marks are NSM almost always.
  if (bc === BC_L && cp >= 0x300 && !MARKS_NOT_NSM.has(cp) && RE_MARK.test(String.fromCodePoint(cp))) return BC_NSM;
  return bc;
}

const JT_U = 0, JT_L = 1, JT_R = 2, JT_D = 3, JT_T = 5;

function joiningType(cp: number): number {
  joiningRuns ??= decodeRuns(JOINING_RUNS);
  const jt = lookupRuns(joiningRuns, cp);
  if (jt === JT_U && RE_MARK.test(String.fromCodePoint(cp))) return JT_T; // marks newer than the table
  return jt;
}

/**
 * Canonical_Combining_Class(cp) == 9 (Virama), probed with canonical reordering: a mark with
 * 0 < ccc < 230 moves before U+0301 (ccc 230); ccc <= 9 keeps it before U+094D (ccc 9) and
 * ccc >= 9 keeps it after U+094D.
 */
function isVirama(cp: number): boolean {
  const ch = String.fromCodePoint(cp);
  if (ch.normalize('NFD') !== ch) return false;
  if (('a\u0301' + ch).normalize('NFD') !== 'a' + ch + '\u0301') return false;
  if (('a' + ch + '\u094d').normalize('NFD') !== 'a' + ch + '\u094d') return false;
  return ('a\u094d' + ch).normalize('NFD') === 'a\u094d' + ch;
}

// ---------------------------------------------------------------------------------------------
// Derived property (RFC 8264 §8)

const PVALID = 1;      // PVALID in both classes
const FREE_PVAL = 2;   // ID_DIS in IdentifierClass, FREE_PVAL in FreeformClass
const CONTEXTJ = 3;
const CONTEXTO = 4;
const DISALLOWED = 5;
const UNASSIGNED = 6;

const RE_UNASSIGNED = /^(?!\p{Noncharacter_Code_Point})\p{Cn}$/u;
const RE_IGNORABLE_OR_CONTROL = /^[\p{Default_Ignorable_Code_Point}\p{Noncharacter_Code_Point}\p{Cc}]$/u;
const RE_LETTER_DIGITS = /^[\p{Ll}\p{Lu}\p{Lo}\p{Nd}\p{Lm}\p{Mn}\p{Mc}]$/u;
const RE_FREE = /^[\p{Lt}\p{Nl}\p{No}\p{Me}\p{Zs}\p{S}\p{P}]$/u;

function computeDerived(cp: number): number {
  // Exceptions (RFC 5892 §2.6)
  switch (cp) {
    case 0x00df: case 0x03c2: case 0x06fd: case 0x06fe: case 0x0f0b: case 0x3007:
      return PVALID;
    case 0x00b7: case 0x0375: case 0x05f3: case 0x05f4: case 0x30fb:
      return CONTEXTO;
    case 0x0640: case 0x07fa: case 0x302e: case 0x302f: case 0x3031: case 0x3032: case 0x3033:
    case 0x3034: case 0x3035: case 0x303b:
      return DISALLOWED;
  }
  if ((cp >= 0x0660 && cp <= 0x0669) || (cp >= 0x06f0 && cp <= 0x06f9)) return CONTEXTO;
  // BackwardCompatible (§9.7) is empty.
  const ch = String.fromCodePoint(cp);
  if (RE_UNASSIGNED.test(ch)) return UNASSIGNED;                              // §9.8
  if (cp >= 0x21 && cp <= 0x7e) return PVALID;                                // §9.11 ASCII7
  if (cp === 0x200c || cp === 0x200d) return CONTEXTJ;                        // §9.8 JoinControl
  if ((cp >= 0x1100 && cp <= 0x11ff) || (cp >= 0xa960 && cp <= 0xa97c) ||
      (cp >= 0xd7b0 && cp <= 0xd7c6) || (cp >= 0xd7cb && cp <= 0xd7fb)) {
    return DISALLOWED;                                                        // §9.9 OldHangulJamo
  }
  if (RE_IGNORABLE_OR_CONTROL.test(ch)) return DISALLOWED;                    // §9.13, §9.12
  if (ch.normalize('NFKC') !== ch) return FREE_PVAL;                         // §9.17 HasCompat
  if (RE_LETTER_DIGITS.test(ch)) return PVALID;                               // §9.1 LetterDigits
  if (RE_FREE.test(ch)) return FREE_PVAL;     // §9.2 OtherLetterDigits, §9.14 Spaces, §9.15 Symbols, §9.16 Punctuation
  return DISALLOWED;                                                          // Zl, Zp, Cf, Cs, Co, ...
}

let derivedCache: Uint8Array | undefined;

const PROPERTY_NAMES = ['', 'PVALID', 'ID_DIS/FREE_PVAL', 'CONTEXTJ', 'CONTEXTO', 'DISALLOWED', 'UNASSIGNED'] as const;
export type DerivedProperty = Exclude<(typeof PROPERTY_NAMES)[number], ''>;

/** PRECIS derived property of a code point (RFC 8264 §8). Exported for tests and diagnostics. */
export function derivedProperty(cp: number): DerivedProperty {
  return PROPERTY_NAMES[derived(cp)] as DerivedProperty;
}

function derived(cp: number): number {
  const cache = (derivedCache ??= new Uint8Array(0x110000));
  let v = cache[cp]!;
  if (v === 0) cache[cp] = v = computeDerived(cp);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Mapping rules

/** Width mapping (RFC 8264 §9.4.1): <wide>/<narrow> characters to their decomposition mapping. */
function widthMapChar(cp: number): number {
  if (cp === 0x3000) return 0x20;
  if (cp <= 0xff5e) return cp - 0xfee0;                         // FF01..FF5E -> 0021..007E
  if (cp === 0xff5f) return 0x2985;
  if (cp === 0xff60) return 0x2986;
  if (cp <= 0xff9f) return String.fromCodePoint(cp).normalize('NFKC').codePointAt(0)!; // halfwidth CJK punct. + katakana
  if (cp === 0xffa0) return 0x3164;                             // halfwidth Hangul -> compatibility jamo
  if (cp <= 0xffbe) return cp - 0xffa1 + 0x3131;
  if (cp >= 0xffc2 && cp <= 0xffc7) return cp - 0xffc2 + 0x314f;
  if (cp >= 0xffca && cp <= 0xffcf) return cp - 0xffca + 0x3155;
  if (cp >= 0xffd2 && cp <= 0xffd7) return cp - 0xffd2 + 0x315b;
  if (cp >= 0xffda && cp <= 0xffdc) return cp - 0xffda + 0x3161;
  if (cp >= 0xffe0 && cp <= 0xffe6) return [0xa2, 0xa3, 0xac, 0xaf, 0xa6, 0xa5, 0x20a9][cp - 0xffe0]!;
  if (cp >= 0xffe8 && cp <= 0xffee) return [0x2502, 0x2190, 0x2191, 0x2192, 0x2193, 0x25a0, 0x25cb][cp - 0xffe8]!;
  return cp;
}
const RE_WIDTH = /[\u3000\uff01-\uffee]/g;
/** Exported for tests. */
export function widthMap(s: string): string {
  return s.replace(RE_WIDTH, (c) => String.fromCodePoint(widthMapChar(c.charCodeAt(0))));
}

const RE_NON_ASCII_SPACE = /(?! )\p{Zs}/gu;

// ---------------------------------------------------------------------------------------------
// Behavioural rules

function hex(cp: number): string {
  return 'U+' + cp.toString(16).toUpperCase().padStart(4, '0');
}

const RE_GREEK = /^\p{Script=Greek}$/u;
const RE_HEBREW = /^\p{Script=Hebrew}$/u;
const RE_HIRA_KATA_HAN = /[\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Han}]/u;

/** CONTEXTJ / CONTEXTO rules of RFC 5892 Appendix A; returns a description of the failure or null. */
function contextRule(cps: number[], i: number, s: string): string | null {
  const cp = cps[i]!;
  const before = i > 0 ? cps[i - 1]! : -1;
  const after = i + 1 < cps.length ? cps[i + 1]! : -1;
  switch (cp) {
    case 0x200c: { // ZERO WIDTH NON-JOINER (A.1)
      if (before >= 0 && isVirama(before)) return null;
      let j = i - 1;
      while (j >= 0 && joiningType(cps[j]!) === JT_T) j--;
      if (j < 0) return 'ZWNJ (U+200C) not after a virama or between joining characters';
      const l = joiningType(cps[j]!);
      if (l !== JT_L && l !== JT_D) return 'ZWNJ (U+200C) not after a virama or between joining characters';
      let k = i + 1;
      while (k < cps.length && joiningType(cps[k]!) === JT_T) k++;
      if (k >= cps.length) return 'ZWNJ (U+200C) not after a virama or between joining characters';
      const r = joiningType(cps[k]!);
      if (r !== JT_R && r !== JT_D) return 'ZWNJ (U+200C) not after a virama or between joining characters';
      return null;
    }
    case 0x200d: // ZERO WIDTH JOINER (A.2)
      return before >= 0 && isVirama(before) ? null : 'ZWJ (U+200D) not after a virama';
    case 0x00b7: // MIDDLE DOT (A.3)
      return before === 0x6c && after === 0x6c ? null : 'MIDDLE DOT (U+00B7) not between two "l"';
    case 0x0375: // GREEK LOWER NUMERAL SIGN (A.4)
      return after >= 0 && RE_GREEK.test(String.fromCodePoint(after)) ? null : 'KERAIA (U+0375) not followed by Greek';
    case 0x05f3: case 0x05f4: // HEBREW GERESH / GERSHAYIM (A.5, A.6)
      return before >= 0 && RE_HEBREW.test(String.fromCodePoint(before)) ? null : `${hex(cp)} not preceded by Hebrew`;
    case 0x30fb: // KATAKANA MIDDLE DOT (A.7)
      return RE_HIRA_KATA_HAN.test(s) ? null : 'KATAKANA MIDDLE DOT (U+30FB) without Hiragana, Katakana or Han';
    default:
      if (cp >= 0x0660 && cp <= 0x0669) { // ARABIC-INDIC DIGITS (A.8)
        return cps.some((c) => c >= 0x06f0 && c <= 0x06f9) ? 'Arabic-Indic digits mixed with Extended Arabic-Indic digits' : null;
      }
      if (cp >= 0x06f0 && cp <= 0x06f9) { // EXTENDED ARABIC-INDIC DIGITS (A.9)
        return cps.some((c) => c >= 0x0660 && c <= 0x0669) ? 'Arabic-Indic digits mixed with Extended Arabic-Indic digits' : null;
      }
      return null;
  }
}

/**
 * Bidi Rule (RFC 5893 §2), all six conditions; applied to strings (labels) that contain R, AL or
 * AN, and to every label of a domain name that has such a label. Returns a failure or null.
 */
function bidiRule(cps: number[]): string | null {
  const n = cps.length;
  const cls = new Uint8Array(n);
  for (let i = 0; i < n; i++) cls[i] = bidiClass(cps[i]!);
  const first = cls[0];
  let last = n - 1;
  while (last > 0 && cls[last] === BC_NSM) last--;
  const end = cls[last]!;
  if (first === BC_R || first === BC_AL) { // RTL label: rules 2, 3, 4
    let hasEN = false;
    let hasAN = false;
    for (let i = 0; i < n; i++) {
      const c = cls[i]!;
      if (c === BC_L || c === BC_OTHER) return `${hex(cps[i]!)} is not allowed in a right-to-left string`;
      if (c === BC_EN) hasEN = true;
      else if (c === BC_AN) hasAN = true;
    }
    if (end !== BC_R && end !== BC_AL && end !== BC_EN && end !== BC_AN) {
      return 'a right-to-left string must end with a right-to-left letter or a digit';
    }
    if (hasEN && hasAN) return 'European and Arabic-Indic digits mixed in a right-to-left string';
    return null;
  }
  if (first === BC_L) { // LTR label: rules 5, 6
    for (let i = 0; i < n; i++) {
      const c = cls[i]!;
      if (c === BC_R || c === BC_AL || c === BC_AN || c === BC_OTHER) {
        return `${hex(cps[i]!)} is not allowed in a left-to-right string (strings containing right-to-left characters must start with one)`;
      }
    }
    if (end !== BC_L && end !== BC_EN) return 'a left-to-right label must end with a letter or a digit';
    return null;
  }
  return 'must start with a letter'; // rule 1
}

function codePoints(s: string): number[] {
  const cps: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const cp = s.codePointAt(i)!;
    if (cp > 0xffff) i++;
    cps.push(cp);
  }
  return cps;
}

function hasRtl(cps: number[]): boolean {
  for (const cp of cps) {
    if (cp >= 0x0590) {
      const c = bidiClass(cp);
      if (c === BC_R || c === BC_AL || c === BC_AN) return true;
    }
  }
  return false;
}

function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) {
      if (c < 0x800) n += 1;
      else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) { n += 2; i++; }
      else n += 2;
    }
  }
  return n;
}

function checkLength(s: string, part: string): void {
  if (s.length === 0) throw new JidError(`empty ${part}`);
  // UTF-8 needs at least 1 and at most 3 octets per UTF-16 code unit.
  if (s.length > MAX_PART_OCTETS || (s.length * 3 > MAX_PART_OCTETS && utf8Length(s) > MAX_PART_OCTETS)) {
    throw new JidError(`${part} too long`, `more than ${MAX_PART_OCTETS} octets`);
  }
}

// ---------------------------------------------------------------------------------------------
// Profiles

const ID_CLASS = 0;
const FREEFORM_CLASS = 1;

/**
 * Enforcement (RFC 8264 §7): mapping rules applied until stable (at most 4 times), then the
 * behavioural rules: every code point valid for the string class, contextual rules, Bidi Rule.
 */
function enforce(input: string, map: (s: string) => string, cls: number, bidi: boolean, part: string): string {
  if (input.length > MAX_INPUT_UNITS) throw new JidError(`${part} too long`);
  let s = map(input);
  for (let round = 0; ; round++) {
    const t = map(s);
    if (t === s) break;
    if (round === 2) throw new JidError(`${part} is not stable under PRECIS preparation`);
    s = t;
  }
  if (s.length === 0) throw new JidError(`empty ${part}`);
  const cps: number[] = [];
  let needContext = false;
  for (let i = 0; i < s.length; i++) {
    const cp = s.codePointAt(i)!;
    if (cp > 0xffff) i++;
    cps.push(cp);
    const p = derived(cp);
    if (p === PVALID) continue;
    if (p === CONTEXTJ || p === CONTEXTO) { needContext = true; continue; }
    if (p === FREE_PVAL && cls === FREEFORM_CLASS) continue;
    throw new JidError(`${part} contains a disallowed character`,
      `${hex(cp)}${p === UNASSIGNED ? ' is unassigned' : p === FREE_PVAL ? ' is not allowed in identifiers' : ' is disallowed'}`);
  }
  if (needContext) {
    for (let i = 0; i < cps.length; i++) {
      const p = derived(cps[i]!);
      if (p !== CONTEXTJ && p !== CONTEXTO) continue;
      const why = contextRule(cps, i, s);
      if (why) throw new JidError(`${part} violates a contextual rule`, why);
    }
  }
  if (bidi && hasRtl(cps)) {
    const why = bidiRule(cps);
    if (why) throw new JidError(`${part} violates the bidi rule`, why);
  }
  return s;
}

const mapUsername = (s: string): string => widthMap(s).toLowerCase().normalize('NFC');
const mapOpaque = (s: string): string => s.replace(RE_NON_ASCII_SPACE, ' ').normalize('NFC');

/** UsernameCaseMapped profile (RFC 8265 §3.3). Throws JidError. */
export function usernameCaseMapped(s: string, part = 'username'): string {
  return enforce(s, mapUsername, ID_CLASS, true, part);
}

/** OpaqueString profile (RFC 8265 §4.2). Throws JidError. */
export function opaqueString(s: string, part = 'string'): string {
  return enforce(s, mapOpaque, FREEFORM_CLASS, false, part);
}

const RE_SPACES = / {2,}/g;
const mapNickname = (s: string): string =>
  s.replace(RE_NON_ASCII_SPACE, ' ').replace(RE_SPACES, ' ').trim().normalize('NFKC');

/**
 * Nickname profile enforcement (RFC 8266 §2.3), e.g. for MUC nicknames: non-ASCII spaces to
 * U+0020, leading/trailing spaces removed, runs of spaces collapsed, NFKC, FreeformClass, no
 * case mapping (that is for comparison only, see nicknameKey). Throws JidError.
 */
export function prepNickname(s: string): string {
  return enforce(s, mapNickname, FREEFORM_CLASS, false, 'nickname');
}

/** Nickname comparison key (RFC 8266 §2.4): two nicknames match iff their keys are equal. */
export function nicknameKey(s: string): string {
  return enforce(s, (x) => mapNickname(mapNickname(x).toLowerCase()), FREEFORM_CLASS, false, 'nickname');
}

// ---------------------------------------------------------------------------------------------
// JID parts (RFC 7622 §3)

/**
 * Localpart: UsernameCaseMapped plus the characters RFC 7622 §3.3.1 disallows:
 * U+0022 " U+0026 & U+0027 ' U+002F / U+003A : U+003C < U+003E > U+0040 @.
 */
export function prepLocalpart(s: string): string {
  if (s.length > MAX_INPUT_UNITS) throw new JidError('localpart too long');
  let upper = false;
  let i = 0;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) break;
    if (c === 0x22 || c === 0x26 || c === 0x27 || c === 0x2f || c === 0x3a || c === 0x3c || c === 0x3e || c === 0x40) {
      throw new JidError('localpart contains a disallowed character', `${hex(c)} (${String.fromCharCode(c)})`);
    }
    if (c >= 0x41 && c <= 0x5a) upper = true;
  }
  let out: string;
  if (i === s.length) { // all printable ASCII: PVALID, no mapping but case, no bidi/context rules
    out = upper ? s.toLowerCase() : s;
  } else {
    const c = s.charCodeAt(i);
    if (c < 0x80) throw new JidError('localpart contains a disallowed character', hex(c));
    out = usernameCaseMapped(s, 'localpart');
    for (let j = 0; j < out.length; j++) {
      const d = out.charCodeAt(j);
      if (d === 0x22 || d === 0x26 || d === 0x27 || d === 0x2f || d === 0x3a || d === 0x3c || d === 0x3e || d === 0x40) {
        throw new JidError('localpart contains a disallowed character', `${hex(d)} (${String.fromCharCode(d)})`);
      }
    }
  }
  checkLength(out, 'localpart');
  return out;
}

/** Resourcepart: OpaqueString (RFC 7622 §3.4). */
export function prepResource(s: string): string {
  if (s.length > MAX_INPUT_UNITS) throw new JidError('resourcepart too long');
  let i = 0;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) break;
  }
  let out: string;
  if (i === s.length) {
    out = s;
  } else {
    const c = s.charCodeAt(i);
    if (c < 0x80) throw new JidError('resourcepart contains a disallowed character', hex(c));
    out = opaqueString(s, 'resourcepart');
  }
  checkLength(out, 'resourcepart');
  return out;
}

/**
 * Password preparation with the OpaqueString profile (RFC 8265 §4.2, which obsoletes SASLprep):
 * non-ASCII spaces become U+0020, NFC, FreeformClass. This is our own implementation, not
 * @mongodb-js/saslprep (RFC 4013/stringprep on Unicode 3.2); both give the same result for
 * ordinary passwords. Throws JidError (reason 'empty password' / 'password contains a
 * disallowed character' / ...).
 */
export function saslprepPassword(s: string): string {
  let i = 0;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) break;
  }
  if (s.length === 0) throw new JidError('empty password');
  if (i === s.length) return s;
  if (s.charCodeAt(i) < 0x80) throw new JidError('password contains a disallowed character', hex(s.charCodeAt(i)));
  const out = enforce(s, mapOpaque, FREEFORM_CLASS, false, 'password');
  return out;
}

const RE_ASCII_HOST = /^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*$/;
const RE_NUMERIC_LABEL = /(?:^|\.)(?:\d+|0x[0-9a-f]*)$/;
// ASCII that may not appear in a domainpart, even after compatibility mapping of the input.
const RE_BAD_DOMAIN_ASCII = /[\x00-\x2c\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f]/;

// Prepared domainparts by input: a server sees few domains (its own hosts above all), and this
// skips the host-name regexes for them. Same bounds and eviction as Jid's parse cache.
const DOMAIN_CACHE_MAX = 256;
const DOMAIN_CACHE_MAX_INPUT = 256;
const domainCache = new Map<string, string>();

/**
 * A copy of `s` that does not keep a larger string alive: attribute values can be slices of a
 * whole network chunk, and a cache key (or a part sliced from it) would retain that chunk.
 * Prepending forces V8 to flatten into a fresh string; strings under 13 chars are never slices.
 */
export function detachString(s: string): string {
  return s.length < 13 ? s : (' ' + s).slice(1);
}

/**
 * Domainpart (RFC 7622 §3.2): one trailing label separator is stripped; IPv4 (dotted quad) and
 * bracketed IPv6 literals are accepted (IPv6 in canonical form); anything else must be a
 * host name: IDNA/UTS #46 mapping via url.domainToASCII, stored as lower-case U-labels
 * (url.domainToUnicode). Labels are letters, digits, '-' (not first or last) and '_'
 * (tolerated, as most XMPP servers do); no empty labels. No 63-octet label limit is enforced.
 */
export function prepDomain(input: string): string {
  const hit = domainCache.get(input);
  if (hit !== undefined) return hit;
  if (input.length > DOMAIN_CACHE_MAX_INPUT) return prepDomainUncached(input);
  const key = detachString(input);
  const out = prepDomainUncached(key); // throws before anything is cached
  if (domainCache.size >= DOMAIN_CACHE_MAX) domainCache.delete(domainCache.keys().next().value!);
  domainCache.set(key, out);
  return out;
}

function prepDomainUncached(input: string): string {
  let s = input;
  if (s.length === 0) throw new JidError('empty domainpart');
  if (s.length > MAX_INPUT_UNITS) throw new JidError('domainpart too long');
  const last = s.charCodeAt(s.length - 1);
  if (last === 0x2e || last === 0x3002 || last === 0xff0e || last === 0xff61) s = s.slice(0, -1);
  if (s.length === 0) throw new JidError('empty domainpart');
  if (s.charCodeAt(0) === 0x5b) { // '[' IPv6 literal
    if (s.charCodeAt(s.length - 1) !== 0x5d || !isIPv6(s.slice(1, -1)) || s.includes('%')) {
      throw new JidError('invalid domainpart', 'malformed IPv6 literal');
    }
    const v6 = domainToASCII(s);
    if (v6 === '') throw new JidError('invalid domainpart', 'malformed IPv6 literal');
    return v6;
  }
  let ascii: string;
  let ascii7 = true;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) { ascii7 = false; break; }
  if (ascii7) {
    const lower = s.toLowerCase();
    if (!RE_ASCII_HOST.test(lower)) throw new JidError('invalid domainpart', describeBadHost(lower));
    if (RE_NUMERIC_LABEL.test(lower)) {
      if (isIPv4(lower)) return lower;
      throw new JidError('invalid domainpart', 'numeric top-level label that is not an IPv4 address');
    }
    if (!lower.includes('xn--')) {
      checkLength(lower, 'domainpart');
      return lower;
    }
    ascii = lower;
  } else {
    if (RE_BAD_DOMAIN_ASCII.test(s.normalize('NFKC'))) throw new JidError('invalid domainpart', 'disallowed character');
    ascii = domainToASCII(s);
  }
  if (ascii === '' || !RE_ASCII_HOST.test(ascii)) throw new JidError('invalid domainpart', 'not a valid internationalized domain name');
  if (RE_NUMERIC_LABEL.test(ascii)) {
    if (isIPv4(ascii)) return ascii;
    throw new JidError('invalid domainpart', 'numeric top-level label that is not an IPv4 address');
  }
  const uni = domainToUnicode(ascii);
  if (uni === '' || domainToASCII(uni) !== ascii) throw new JidError('invalid domainpart', 'not a valid internationalized domain name');
  // url.domainToASCII does not apply the Bidi Rule (RFC 5893), which IDNA2008 requires.
  if (/[^\0-\u058f]/.test(uni)) {
    const labels = uni.split('.').map(codePoints);
    if (labels.some(hasRtl)) {
      for (const l of labels) {
        const why = bidiRule(l);
        if (why) throw new JidError('domainpart violates the bidi rule', why);
      }
    }
  }
  checkLength(uni, 'domainpart');
  return uni;
}

function describeBadHost(s: string): string {
  if (s.startsWith('.') || s.endsWith('.') || s.includes('..')) return 'empty label';
  const m = /[^a-z0-9_.-]/.exec(s);
  if (m) return `disallowed character ${hex(m[0].charCodeAt(0))}`;
  return 'label starts or ends with a hyphen';
}
