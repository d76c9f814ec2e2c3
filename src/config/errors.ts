// Configuration errors: every problem is reported at once, each as "<dotted.key.path>: <problem>".

import type { z } from 'zod';
import { keysAt } from './introspect.ts';

export interface ConfigIssue {
  /** Dotted key path, array indices in brackets: `tls.certificates[0].cert`; '' for the whole file. */
  path: string;
  message: string;
  /** `file:line:col` of the offending key or value, when the config came from a file. */
  location?: string;
}

/** Stable code for log and CLI consumers (STYLE.md: internal errors carry AMSEL_E_* codes). */
export const CONFIG_ERROR_CODE = 'AMSEL_E_CONFIG';

export class ConfigError extends Error {
  readonly code = CONFIG_ERROR_CODE;
  readonly issues: ConfigIssue[];

  constructor(issues: ConfigIssue[], source?: string) {
    const lines = issues.map((i) => {
      const head = i.path === '' ? i.message : `${i.path}: ${i.message}`;
      return i.location ? `${head} (${i.location})` : head;
    });
    const title = `Invalid configuration${source ? ` in ${source}` : ''}`;
    super(lines.length === 1 ? `${title}: ${lines[0]}` : `${title}:\n${lines.map((l) => `  ${l}`).join('\n')}`);
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const step of path) {
    if (typeof step === 'number') out += `[${step}]`;
    else if (typeof step === 'string' && /^[A-Za-z_$][\w$-]*$/.test(step)) out += out === '' ? step : `.${step}`;
    else out += `[${JSON.stringify(String(step))}]`;
  }
  return out;
}

function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return `${typeof v} ${String(v)}`;
}

const EXPECTED: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  record: 'a mapping',
};

const quote = (v: unknown) => (typeof v === 'string' ? `'${v}'` : String(v));

/**
 * Per-parse error map: the wording for zod's built-in issues. Schemas that pass their own
 * `error` keep it (zod gives schema-level messages precedence).
 */
export const configErrorMap: z.core.$ZodErrorMap = (iss) => {
  switch (iss.code) {
    case 'invalid_type':
      if (iss.input === undefined) return 'required';
      return `expected ${EXPECTED[iss.expected] ?? iss.expected}, got ${describeValue(iss.input)}`;
    case 'too_small': {
      const min = Number(iss.minimum);
      if (iss.origin === 'array' || iss.origin === 'set') return min <= 1 ? 'must not be empty' : `must have at least ${min} entries`;
      if (iss.origin === 'string') return min <= 1 ? 'must not be empty' : `must be at least ${min} characters`;
      return `must be at least ${min}`;
    }
    case 'too_big': {
      const max = Number(iss.maximum);
      if (iss.origin === 'array' || iss.origin === 'set') return `must have at most ${max} entries`;
      if (iss.origin === 'string') return `must be at most ${max} characters`;
      return `must be at most ${max}`;
    }
    case 'invalid_value':
      return `must be ${iss.values.length === 1 ? quote(iss.values[0]) : `one of ${iss.values.map(quote).join(', ')}`}, got ${describeValue(iss.input)}`;
    case 'invalid_format':
      return `must be a valid ${iss.format}`;
    case 'invalid_union':
      return 'does not match any allowed form';
    case 'invalid_key':
      return 'has an invalid key';
    case 'unrecognized_keys':
      return `unknown key${iss.keys.length > 1 ? 's' : ''} ${iss.keys.map(quote).join(', ')}`;
    default:
      return undefined;
  }
};

/** Turns zod's issues into config issues: one per unknown key, with a suggestion when one is close. */
export function issuesFromZod(error: z.ZodError, schema: z.ZodType): (ConfigIssue & { keyPath: PropertyKey[] })[] {
  const out: (ConfigIssue & { keyPath: PropertyKey[] })[] = [];
  for (const iss of error.issues) {
    if (iss.code === 'unrecognized_keys') {
      const known = keysAt(schema, iss.path, (iss as { input?: unknown }).input) ?? [];
      for (const key of iss.keys) {
        const suggestion = suggestKey(key, known);
        out.push({
          keyPath: [...iss.path, key],
          path: formatPath([...iss.path, key]),
          message: suggestion ? `unknown key (did you mean '${suggestion}'?)` : `unknown key (allowed: ${known.join(', ')})`,
        });
      }
    } else {
      out.push({ keyPath: iss.path, path: formatPath(iss.path), message: iss.message });
    }
  }
  return out;
}

/** The known key most likely meant by `key`, if any is close enough. */
export function suggestKey(key: string, known: readonly string[]): string | undefined {
  const norm = (s: string) => s.replace(/[-_\s]/g, '').toLowerCase();
  const k = norm(key);
  // snake_case / kebab-case / wrong case spellings of a camelCase key (min_version -> minVersion)
  const sameLetters = known.find((c) => norm(c) === k);
  if (sameLetters) return sameLetters;
  let best: { key: string; score: number } | undefined;
  for (const candidate of known) {
    const c = norm(candidate);
    const d = editDistance(k, c);
    const limit = Math.max(1, Math.floor(Math.max(k.length, c.length) / 3));
    let score = d <= limit ? d : Infinity;
    // abbreviations: certs -> certificates, max_stanza -> maxStanzaBytes
    if (k.length >= 3 && c.length > k.length && isSubsequence(k, c) && c.startsWith(k.slice(0, 2))) {
      score = Math.min(score, limit + 0.5);
    }
    if (score !== Infinity && (!best || score < best.score)) best = { key: candidate, score };
  }
  return best?.key;
}

function isSubsequence(short: string, long: string): boolean {
  let i = 0;
  for (const ch of long) if (ch === short[i]) i++;
  return i === short.length;
}

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}
