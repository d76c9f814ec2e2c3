// Failed-login slowdown.
//
// - Every failure counts against the client's IP and (when known) the attempted account.
// - `delayMs` is applied by the caller BEFORE sending a <failure/> (never before a <success/>), and grows
//   exponentially with max(ipFailures, accountFailures): an online guesser of one account is slowed down
//   from any number of IPs, while the real user, who knows the password, is never delayed or locked out.
// - Temporary refusal (`isRefused`) is per IP only, after `refuseAfter` failures, for `refuseForMs`.
// - A success forgives the failures of that account: the account counter, and the failures the IP made
//   against that account (a user who mistyped, or many users behind one NAT). It does not forgive the
//   IP's failures against other accounts: otherwise an attacker who owns one account could reset the
//   refusal by logging into it between guesses.
// - Counters are forgotten after `decayMs` without failures; memory is bounded (`maxEntries`, LRU).
// - IPv6 addresses are aggregated per /64 (one host typically owns a whole /64); IPv4-mapped IPv6
//   addresses count as their IPv4 address.

import { isIPv6 } from 'node:net';

export interface AuthThrottleOptions {
  /** Delay after the first failure; doubles per further failure. Default 250. */
  baseDelayMs?: number;
  /** Delay cap. Default 30 000. */
  maxDelayMs?: number;
  /** Failures per IP before temporary refusal. Default 20. */
  refuseAfter?: number;
  /** Refusal duration. Default 5 minutes. */
  refuseForMs?: number;
  /** Failures are forgotten after this long without a new failure. Default 15 minutes. */
  decayMs?: number;
  /** Upper bound on tracked IPs + accounts (least recently used are dropped). Default 100 000. */
  maxEntries?: number;
  now?: () => number;
  /** Called when an IP (its /64 for IPv6) starts a refusal: for the log line. */
  onRefuse?: (ip: string, failures: number, refuseForMs: number) => void;
}

interface Entry {
  failures: number;
  last: number;
  refusedUntil: number;
  /** IP entries: failures per attempted account (at most MAX_ATTRIBUTED accounts; the rest stay unattributed). */
  byAccount?: Map<string, number>;
}

/** Accounts remembered per IP entry; a refused IP makes no new attempts, so refuseAfter-ish is enough. */
const MAX_ATTRIBUTED = 32;

export class AuthThrottle {
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly refuseAfter: number;
  private readonly refuseForMs: number;
  private readonly decayMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;
  private readonly onRefuse: AuthThrottleOptions['onRefuse'];
  /** Map iteration order = LRU order (oldest first). Keys: "i:" + ip, "a:" + account. */
  private readonly entries = new Map<string, Entry>();

  constructor(opts: AuthThrottleOptions = {}) {
    this.baseDelayMs = opts.baseDelayMs ?? 250;
    this.maxDelayMs = opts.maxDelayMs ?? 30_000;
    this.refuseAfter = opts.refuseAfter ?? 20;
    this.refuseForMs = opts.refuseForMs ?? 5 * 60_000;
    this.decayMs = opts.decayMs ?? 15 * 60_000;
    this.maxEntries = Math.max(2, opts.maxEntries ?? 100_000);
    this.now = opts.now ?? Date.now;
    this.onRefuse = opts.onRefuse;
  }

  /** Number of tracked keys (for metrics and tests). */
  get size(): number {
    return this.entries.size;
  }

  /** Delay to apply before answering the next failure for this ip/account. */
  delayMs(ip: string, account: string | undefined): number {
    const n = Math.max(this.failuresOf(ipKey(ip)), account === undefined ? 0 : this.failuresOf(accountKey(account)));
    if (n <= 0) return 0;
    // 2 ** (n - 1) overflows to Infinity for large n; Math.min handles it.
    return Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** Math.min(n - 1, 64));
  }

  /** Temporary refusal per IP (never per account, so an attacker cannot lock a real user out). */
  isRefused(ip: string): boolean {
    const e = this.get(ipKey(ip), false);
    return e !== undefined && e.refusedUntil > this.now();
  }

  failure(ip: string, account: string | undefined): void {
    const now = this.now();
    const e = this.bump(ipKey(ip), now);
    if (e.failures >= this.refuseAfter) {
      const already = e.refusedUntil > now;
      e.refusedUntil = now + this.refuseForMs;
      if (!already) this.onRefuse?.(ip, e.failures, this.refuseForMs);
    }
    if (account === undefined) return;
    const a = accountKey(account);
    this.bump(a, now);
    e.byAccount ??= new Map();
    const n = e.byAccount.get(a);
    if (n !== undefined) e.byAccount.set(a, n + 1);
    else if (e.byAccount.size < MAX_ATTRIBUTED) e.byAccount.set(a, 1);
  }

  /** Clears the account counter and the IP's failures against that account (not its other failures). */
  success(ip: string, account: string): void {
    const a = accountKey(account);
    this.entries.delete(a);
    const k = ipKey(ip);
    const e = this.get(k, false);
    const n = e?.byAccount?.get(a);
    if (e === undefined || n === undefined) return;
    e.byAccount!.delete(a);
    e.failures -= n;
    if (e.failures <= 0) this.entries.delete(k);
  }

  private failuresOf(key: string): number {
    return this.get(key, false)?.failures ?? 0;
  }

  /** Live entry or undefined (expired ones are dropped). `touch` moves it to most-recently-used. */
  private get(key: string, touch: boolean): Entry | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    const now = this.now();
    if (now - e.last >= this.decayMs && e.refusedUntil <= now) {
      this.entries.delete(key);
      return undefined;
    }
    if (touch) {
      this.entries.delete(key);
      this.entries.set(key, e);
    }
    return e;
  }

  private bump(key: string, now: number): Entry {
    let e = this.get(key, true);
    if (e === undefined) {
      e = { failures: 0, last: now, refusedUntil: 0 };
      this.entries.set(key, e);
      this.evict();
    }
    e.failures++;
    e.last = now;
    return e;
  }

  private evict(): void {
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done) return;
      this.entries.delete(oldest.value);
    }
  }
}

function accountKey(account: string): string {
  return `a:${account.normalize('NFKC').toLowerCase()}`;
}

/** IPv6 → its /64 prefix; IPv4-mapped IPv6 → the IPv4 address; anything else as is. */
export function ipKey(ip: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  if (mapped) return `i:${mapped[1]}`;
  const zoneless = ip.split('%')[0]!;
  if (!isIPv6(zoneless)) return `i:${ip}`;
  const groups = expandIPv6(zoneless);
  return groups ? `i:${groups.slice(0, 4).join(':')}::/64` : `i:${ip}`;
}

function expandIPv6(ip: string): string[] | undefined {
  let s = ip.toLowerCase();
  // Embedded IPv4 tail (e.g. ::1.2.3.4) → two hex groups.
  const v4 = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    s = s.slice(0, v4.index) + ((a << 8) | b).toString(16) + ':' + ((c << 8) | d).toString(16);
  }
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const fill = halves.length === 2 ? 8 - head.length - tail.length : 0;
  const groups = [...head, ...Array<string>(Math.max(0, fill)).fill('0'), ...tail];
  if (groups.length !== 8) return undefined;
  return groups.map((g) => parseInt(g, 16).toString(16));
}
