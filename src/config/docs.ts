// The configuration reference, generated from the schema's descriptions and defaults
// (STYLE.md item 10; cf. mox's config docs from struct tags, ejabberd's mod_doc), so the
// documentation cannot drift from validation. `amsel config-reference` prints it.

import { stringify } from 'yaml';
import type { z } from 'zod';
import { defOf, unwrap } from './introspect.ts';
import { ConfigSchema } from './schema.ts';

interface Row {
  key: string;
  type: string;
  default: string;
  description: string;
}

/** Markdown reference of every configuration key: type, default and description. */
export function configReference(): string {
  const out: string[] = [
    '# Amsel configuration reference',
    '',
    '<!-- Generated from src/config/schema.ts by `amsel config-reference`; do not edit. -->',
    '',
    'Amsel reads one YAML file (`--config FILE`, `AMSEL_CONFIG`, default `/etc/amsel/amsel.yaml`).',
    'Keys are camelCase. Unknown keys are errors, so a misspelt setting is reported instead of',
    'ignored; every problem is reported at once, naming the key and line. Relative paths are',
    "resolved against the config file's directory.",
    '',
    'A minimal file:',
    '',
    '```yaml',
    'hosts: [example.org]',
    'tls:',
    '  certificates:',
    '    - cert: /etc/letsencrypt/live/example.org/fullchain.pem',
    '      key: /etc/letsencrypt/live/example.org/privkey.pem',
    '```',
    '',
  ];
  renderObject(out, '', ConfigSchema, 2);
  return out.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd() + '\n';
}

/** What the module reference needs to know of a module (a ModuleDefinition fits). */
export interface ModuleDoc {
  name: string;
  defaultEnabled?: boolean;
  specs?: readonly { xep?: number; rfc?: number; version?: string; status: string; note?: string }[];
  config?: z.ZodType;
}

/** Markdown reference of the modules: what each implements and its `modules.<name>` settings. */
export function modulesReference(mods: readonly ModuleDoc[]): string {
  const out: string[] = [
    '## Modules',
    '',
    'Each feature is a module, enabled or disabled under `modules` (`name: true`, `name: false`, or',
    '`name: { ...settings }`, which also enables it). Settings are validated by the module when the',
    'server starts; an unknown module name or setting is an error.',
    '',
    '| Module | Enabled by default | Implements |',
    '|---|---|---|',
  ];
  const spec = (s: NonNullable<ModuleDoc['specs']>[number]) =>
    `${s.xep !== undefined ? `XEP-${String(s.xep).padStart(4, '0')}` : `RFC ${s.rfc}`}${s.status === 'complete' ? '' : ` (${s.status}${s.note ? `: ${s.note}` : ''})`}`;
  for (const m of mods) out.push(`| \`${m.name}\` | ${m.defaultEnabled ? 'yes' : 'no'} | ${cell((m.specs ?? []).map(spec).join(', ') || '—')} |`);
  out.push('');
  for (const m of mods) {
    if (!m.config) continue;
    renderObject(out, `modules.${m.name}`, m.config, 3);
  }
  return out.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd() + '\n';
}

function renderObject(out: string[], path: string, schema: z.ZodType, level: number, title = path): void {
  const u = unwrap(schema);
  const def = defOf(u.core);

  if (def.type === 'union' && def.discriminator) {
    if (path) heading(out, level, path, u.description);
    if (u.hasDefault) out.push(`Default: \`${def.discriminator}: ${String((u.defaultValue as Record<string, unknown>)[def.discriminator])}\`.`, '');
    for (const option of def.options ?? []) {
      const o = unwrap(option);
      const tag = defOf(o.core).shape?.[def.discriminator];
      const value = tag ? (defOf(unwrap(tag).core).values ?? [])[0] : undefined;
      renderObject(out, path, option, level + 1, `${path}\` with \`${def.discriminator}: ${String(value)}`);
    }
    return;
  }
  if (def.type === 'array' && def.element) {
    renderObject(out, `${path}[]`, def.element, level, `${title}[]`);
    return;
  }
  if (def.type !== 'object') return;

  const shape = def.shape ?? {};
  const leaves: Row[] = [];
  const nested: [string, z.ZodType][] = [];
  const blockDefaults: [string, unknown][] = [];
  for (const [key, child] of Object.entries(shape)) {
    const full = path ? `${path}.${key}` : key;
    if (isSection(child)) {
      nested.push([full, child]);
      continue;
    }
    const c = unwrap(child);
    let dflt: string;
    if (c.hasDefault) {
      if (isMapping(c.defaultValue) && Object.keys(c.defaultValue).length > 0) {
        dflt = 'see below';
        blockDefaults.push([full, c.defaultValue]);
      } else {
        dflt = `\`${formatValue(c.defaultValue)}\``;
      }
    } else {
      dflt = c.optional ? '—' : '**required**';
    }
    leaves.push({ key: full, type: typeName(child), default: dflt, description: c.description ?? '' });
  }

  if (path) heading(out, level, title, u.description);
  if (leaves.length > 0) {
    out.push('| Key | Type | Default | Description |', '|---|---|---|---|');
    for (const r of leaves) out.push(`| \`${r.key}\` | ${cell(r.type)} | ${cell(r.default)} | ${cell(r.description)} |`);
    out.push('');
  }
  for (const [key, value] of blockDefaults) {
    out.push(`Default of \`${key}\`:`, '', '```yaml', stringify({ [key.split('.').pop()!]: value }).trimEnd(), '```', '');
  }
  for (const [full, child] of nested) renderObject(out, full, child, path ? level + 1 : level);
}

/** Objects, arrays of objects and discriminated unions get their own section. */
function isSection(schema: z.ZodType): boolean {
  const def = defOf(unwrap(schema).core);
  if (def.type === 'object') return true;
  if (def.type === 'union' && def.discriminator) return true;
  return def.type === 'array' && def.element !== undefined && isSection(def.element);
}

function heading(out: string[], level: number, path: string, description: string | undefined): void {
  out.push(`${'#'.repeat(Math.min(level, 6))} \`${path}\``, '');
  if (description) out.push(description, '');
}

function typeName(schema: z.ZodType): string {
  const u = unwrap(schema);
  if (typeof u.meta.type === 'string') return u.meta.type;
  const core = u.core;
  const def = defOf(core);
  switch (def.type) {
    case 'string':
      return 'string';
    case 'boolean':
      return 'boolean';
    case 'number': {
      const n = core as unknown as { minValue: number | null; maxValue: number | null; isInt: boolean };
      const isInt = n.isInt;
      const min = typeof n.minValue === 'number' && n.minValue > Number.MIN_SAFE_INTEGER ? n.minValue : undefined;
      const max = typeof n.maxValue === 'number' && n.maxValue < Number.MAX_SAFE_INTEGER ? n.maxValue : undefined;
      const range = min !== undefined && max !== undefined ? ` ${min}–${max}` : min !== undefined ? ` ≥ ${min}` : '';
      return `${isInt ? 'integer' : 'number'}${range}`;
    }
    case 'enum':
      return Object.values(def.entries ?? {}).map((v) => `\`${v}\``).join(' \\| ');
    case 'literal':
      return (def.values ?? []).map((v) => `\`${String(v)}\``).join(' \\| ');
    case 'array':
      return def.element ? `list of ${typeName(def.element)}` : 'list';
    case 'record':
      return def.valueType ? `mapping of name → ${typeName(def.valueType)}` : 'mapping';
    case 'union':
      return (def.options ?? []).map(typeName).join(' or ');
    case 'unknown':
      return 'any';
    case 'object':
      return 'mapping';
    default:
      return def.type;
  }
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function formatValue(v: unknown): string {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) return `[${v.map(formatValue).join(', ')}]`;
  return JSON.stringify(v);
}

function cell(s: string): string {
  return s.replace(/\n/g, ' ').replace(/(?<!\\)\|/g, '\\|');
}
