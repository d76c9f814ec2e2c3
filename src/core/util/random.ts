// Random identifiers for the hot paths (stream ids, SCRAM nonces, connection ids) from a pool
// filled by the CSPRNG: one randomFillSync per 4 KiB instead of a call (and a Buffer) per id.
// Every byte is handed out once, so the ids are exactly as unpredictable as randomBytes().
import { randomFillSync } from 'node:crypto';

const POOL_SIZE = 4096;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let offset = POOL_SIZE;

function take(n: number): number {
  if (n > POOL_SIZE) throw new RangeError(`at most ${POOL_SIZE} random bytes at once`);
  if (offset + n > POOL_SIZE) {
    randomFillSync(pool);
    offset = 0;
  }
  const at = offset;
  offset += n;
  return at;
}

/** n random bytes as base64url (no padding). */
export function randomBase64url(n: number): string {
  const at = take(n);
  return pool.toString('base64url', at, at + n);
}

/** n random bytes as standard base64 (with padding), e.g. a SCRAM nonce. */
export function randomBase64(n: number): string {
  const at = take(n);
  return pool.toString('base64', at, at + n);
}

/** n random bytes as lowercase hex. */
export function randomHex(n: number): string {
  const at = take(n);
  return pool.toString('hex', at, at + n);
}
