// Hot-path queries compiled once. Building and compiling a Kysely query (operation-node tree,
// visitor, frozen objects) costs more than running a point lookup on SQLite; the queries a login
// runs are always the same SQL with other values. prepared() builds the query once per Kysely
// instance with marker values, remembers where each marker landed among the parameters, and
// afterwards only swaps in the values.
import { createQueryId, type CompiledQuery, type Compilable, type Kysely } from 'kysely';

const MARK = '\u0000amsel-param-';

export interface Prepared<A extends readonly unknown[], R> {
  /** All rows. */
  all(db: Kysely<any>, ...args: A): Promise<R[]>;
  /** The first row or undefined. */
  first(db: Kysely<any>, ...args: A): Promise<R | undefined>;
}

/**
 * `build` receives one placeholder per argument and must use each exactly as a value (in a
 * where, values(), limit…), never to shape the query: the shape is fixed at the first call.
 */
export function prepared<A extends readonly unknown[], R = Record<string, unknown>>(
  arity: A['length'],
  build: (db: Kysely<any>, ...params: A) => Compilable<R>,
): Prepared<A, R> {
  const compiled = new WeakMap<Kysely<any>, { q: CompiledQuery<R>; slots: Int32Array }>();
  const get = (db: Kysely<any>) => {
    let c = compiled.get(db);
    if (c === undefined) {
      const markers = Array.from({ length: arity }, (_, i) => `${MARK}${i}`) as unknown as A;
      const q = build(db, ...markers).compile();
      const slots = new Int32Array(q.parameters.length);
      const seen = new Set<number>();
      q.parameters.forEach((p, j) => {
        const i = typeof p === 'string' && p.startsWith(MARK) ? Number(p.slice(MARK.length)) : -1;
        slots[j] = i;
        if (i >= 0) seen.add(i);
      });
      if (seen.size !== arity) throw new Error(`prepared query uses ${seen.size} of its ${arity} parameters as values: ${q.sql}`);
      c = { q, slots };
      compiled.set(db, c);
    }
    return c;
  };
  const run = async (db: Kysely<any>, args: A): Promise<R[]> => {
    const { q, slots } = get(db);
    const parameters = new Array<unknown>(slots.length);
    for (let j = 0; j < slots.length; j++) parameters[j] = slots[j]! >= 0 ? args[slots[j]!] : q.parameters[j];
    const r = await db.executeQuery<R>({ query: q.query, queryId: createQueryId(), sql: q.sql, parameters });
    return r.rows;
  };
  return {
    all: (db, ...args) => run(db, args),
    first: async (db, ...args) => (await run(db, args))[0],
  };
}
