// Read-only walking of zod 4 schemas, shared by error messages (known keys for "did you
// mean") and the generated reference (docs.ts). Only the schema kinds used in schema.ts are
// understood; anything else is reported as opaque.

import type { z } from 'zod';

export interface Def {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  out?: z.ZodType;
  element?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  options?: readonly z.ZodType[];
  discriminator?: string;
  valueType?: z.ZodType;
  entries?: Record<string, string>;
  values?: readonly unknown[];
  defaultValue?: unknown;
  catchall?: z.ZodType;
}

export function defOf(schema: z.ZodType): Def {
  return (schema as unknown as { _zod: { def: Def } })._zod.def;
}

const WRAPPERS = new Set(['default', 'prefault', 'optional', 'nullable', 'readonly', 'catch', 'nonoptional']);

export interface Unwrapped {
  /** The schema that decides the value's shape (object, array, string...). */
  core: z.ZodType;
  /** The outermost description found while unwrapping. */
  description?: string;
  /** The default, if a `.default()` or `.prefault()` layer was crossed. */
  hasDefault: boolean;
  defaultValue?: unknown;
  optional: boolean;
  /** `.meta()` of all layers, outer layers winning. */
  meta: Record<string, unknown>;
}

/** Strips defaults, optionals and pipes (taking the non-transform side). */
export function unwrap(schema: z.ZodType): Unwrapped {
  let s = schema;
  const out: Unwrapped = { core: schema, hasDefault: false, optional: false, meta: {} };
  for (;;) {
    if (out.description === undefined && s.description !== undefined) out.description = s.description;
    const meta = (s as unknown as { meta(): Record<string, unknown> | undefined }).meta();
    if (meta) out.meta = { ...meta, ...out.meta };
    const def = defOf(s);
    if (WRAPPERS.has(def.type) && def.innerType) {
      if ((def.type === 'default' || def.type === 'prefault') && !out.hasDefault) {
        out.hasDefault = true;
        out.defaultValue = def.defaultValue;
      }
      if (def.type === 'optional') out.optional = true;
      s = def.innerType;
    } else if (def.type === 'pipe' && def.in && def.out) {
      s = defOf(def.in).type === 'transform' ? def.out : def.in;
    } else {
      out.core = s;
      return out;
    }
  }
}

/**
 * The keys allowed at `path` in `schema`, given the (partial) input object found there (used
 * to pick the branch of a discriminated union). Undefined when the path leads nowhere known.
 */
export function keysAt(schema: z.ZodType, path: readonly PropertyKey[], input: unknown): string[] | undefined {
  let s: z.ZodType | undefined = schema;
  for (const step of path) {
    if (!s) return undefined;
    s = childSchema(s, step);
  }
  if (!s) return undefined;
  const obj = objectBranch(s, input);
  return obj ? Object.keys(defOf(obj).shape ?? {}) : undefined;
}

function childSchema(schema: z.ZodType, step: PropertyKey): z.ZodType | undefined {
  const { core } = unwrap(schema);
  const def = defOf(core);
  if (def.type === 'object' && typeof step === 'string') return def.shape?.[step];
  if (def.type === 'array' && typeof step === 'number') return def.element;
  if (def.type === 'record') return def.valueType;
  return undefined;
}

function objectBranch(schema: z.ZodType, input: unknown): z.ZodType | undefined {
  const { core } = unwrap(schema);
  const def = defOf(core);
  if (def.type === 'object') return core;
  if (def.type === 'union' && def.options) {
    const objects = def.options.map((o) => unwrap(o).core).filter((o) => defOf(o).type === 'object');
    if (def.discriminator && input && typeof input === 'object') {
      const tag = (input as Record<string, unknown>)[def.discriminator];
      const match = objects.find((o) => {
        const lit = defOf(o).shape?.[def.discriminator!];
        return lit !== undefined && (defOf(lit).values ?? []).includes(tag);
      });
      if (match) return match;
    }
    return objects[0];
  }
  return undefined;
}
