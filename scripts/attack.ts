// The attacker's trial (issue 5): throw the malicious XML corpus, a connection flood, SASL
// guessing and authenticated floods at a running server on this machine, while a normal client
// stays logged in and pings the server and messages itself every second. Reports whether the
// normal client was served throughout (and the latency of its pings), what each attack got, and
// the server's memory and CPU when --pid is given.
//
//   node --import tsx scripts/attack.ts --port 5222 [--tls-port 5223] --domain localhost \
//     --ca .amsel-test/tls/dev-ca/ca.crt --user alice --password 'alice secret' \
//     [--attacker-user mallory --attacker-password 'x'] [--connections 1000] [--sources 50] \
//     [--duration 30] [--pid <server pid>] [--json]
//
// The accounts must exist (`amsel adduser alice@localhost`; the attacker account, if given,
// enables the authenticated attacks). Loopback only: the host must be 127.0.0.0/8 or ::1. The
// flood comes from --sources loopback addresses (127.0.1.1, 127.0.1.2, ...: on Linux all of
// 127/8 is local), so that per-address limits do not stop it alone. Counts and time are bounded
// (--connections <= 10000, --duration <= 600 s). Exit code 0 when the normal client was served
// throughout: every ping and every message answered within --max-latency ms (default 2000).

import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { connect, rawAttr, type XmppClient } from '../bench/load/client.ts';
import { percentile } from '../bench/load/stats.ts';

// --- options -----------------------------------------------------------------------------------

interface Options {
  host: string; port: number; tlsPort: number | undefined; domain: string; ca: string;
  user: string; password: string; attackerUser: string | undefined; attackerPassword: string | undefined;
  connections: number; sources: number; duration: number; pid: number | undefined; maxLatency: number; json: boolean;
}

const HELP = `usage: node --import tsx scripts/attack.ts --port N --domain D --ca FILE --user U --password P [options]
  --host H                 server address, loopback only (default 127.0.0.1)
  --tls-port N             Direct TLS port (XEP-0368); used for TLS floods and the attacker's logins
  --attacker-user U, --attacker-password P   an account for the authenticated attacks
  --connections N          concurrent flood connections (default 500, at most 10000)
  --sources N              loopback source addresses for the flood (default 50, at most 250)
  --duration S             seconds of attack (default 30, at most 600)
  --pid PID                the server's process id: report its memory and CPU
  --max-latency MS         a normal-client round trip slower than this counts as not served (default 2000)
  --json                   print the report as one JSON object`;

function parseOptions(argv: string[]): Options {
  const o: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') { process.stdout.write(HELP + '\n'); process.exit(0); }
    if (a === '--json') { o.json = '1'; continue; }
    if (!a.startsWith('--') || i + 1 >= argv.length) throw new Error(`bad argument ${a}\n${HELP}`);
    o[a.slice(2)] = argv[++i]!;
  }
  const num = (k: string, d: number | undefined, max: number): number | undefined => {
    if (o[k] === undefined) return d;
    const n = Number(o[k]);
    if (!Number.isInteger(n) || n < 0 || n > max) throw new Error(`--${k} must be an integer from 0 to ${max}`);
    return n;
  };
  for (const k of ['port', 'domain', 'ca', 'user', 'password']) if (o[k] === undefined) throw new Error(`--${k} is required\n${HELP}`);
  const host = o.host ?? '127.0.0.1';
  const loopback = host === 'localhost' || host === '::1' || (net.isIPv4(host) && host.startsWith('127.'));
  if (!loopback) throw new Error(`--host ${host}: this tool only attacks servers on this machine (127.0.0.0/8, ::1)`);
  return {
    host: host === 'localhost' ? '127.0.0.1' : host, port: num('port', undefined, 65535)!, tlsPort: num('tls-port', undefined, 65535),
    domain: o.domain!, ca: o.ca!, user: o.user!, password: o.password!,
    attackerUser: o['attacker-user'], attackerPassword: o['attacker-password'],
    connections: num('connections', 500, 10_000)!, sources: Math.max(1, num('sources', 50, 250)!),
    duration: num('duration', 30, 600)!, pid: num('pid', undefined, 1 << 30), maxLatency: num('max-latency', 2000, 600_000)!,
    json: o.json === '1',
  };
}

// --- a raw connection with a bounded receive buffer --------------------------------------------

const HEADER = (domain: string, ns = 'jabber:client') =>
  `<?xml version='1.0'?><stream:stream xmlns='${ns}' xmlns:stream='http://etherx.jabber.org/streams' to='${domain}' version='1.0'>`;
const SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';

class Raw {
  text = '';
  isClosed = false;
  readonly closed: Promise<void>;
  private waiters: (() => void)[] = [];

  constructor(readonly sock: net.Socket) {
    this.closed = new Promise((r) => sock.once('close', () => { this.isClosed = true; this.wake(); r(); }));
    sock.on('data', (d: Buffer) => {
      this.text += d.toString('latin1');
      if (this.text.length > 65536) this.text = this.text.slice(-32768);
      this.wake();
    });
    sock.on('error', () => undefined);
  }

  private wake(): void { const w = this.waiters; this.waiters = []; for (const f of w) f(); }

  static open(o: Options, opts: { tls?: boolean; localAddress?: string; timeoutMs?: number } = {}): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const common = { host: o.host, localAddress: opts.localAddress };
      const s = opts.tls
        ? tls.connect({ ...common, port: o.tlsPort!, servername: o.domain, ca: readCa(o.ca), ALPNProtocols: ['xmpp-client'] })
        : net.connect({ ...common, port: o.port });
      const timer = setTimeout(() => { s.destroy(); reject(new Error('connect timeout')); }, opts.timeoutMs ?? 10_000);
      s.once(opts.tls ? 'secureConnect' : 'connect', () => { clearTimeout(timer); resolve(new Raw(s)); });
      s.once('error', (e) => { clearTimeout(timer); reject(e); });
    });
  }

  send(data: string | Buffer): Promise<void> {
    return new Promise((resolve) => {
      if (this.sock.destroyed || !this.sock.writable) return resolve();
      this.sock.write(data, () => resolve());
    });
  }

  /** Wait for a pattern in what was received; null on timeout or close. */
  async wait(re: RegExp, ms: number): Promise<RegExpMatchArray | null> {
    const deadline = Date.now() + ms;
    for (;;) {
      const m = this.text.match(re);
      if (m) return m;
      const left = deadline - Date.now();
      if (this.isClosed || left <= 0) return null;
      await new Promise<void>((r) => { const t = setTimeout(r, left); this.waiters.push(() => { clearTimeout(t); r(); }); });
    }
  }

  /** The stream error condition received, if any. */
  get streamError(): string | undefined {
    return /<stream:error>\s*<([a-z-]+)/.exec(this.text)?.[1];
  }

  destroy(): void { this.sock.destroy(); }
}

let caCache: Buffer | undefined;
function readCa(file: string): Buffer { return (caCache ??= readFileSync(file)); }

/** Log in over Direct TLS with PLAIN and bind a resource; null when it fails. */
async function login(o: Options, user: string, password: string, localAddress: string, until: number): Promise<Raw | null> {
  if (!o.tlsPort) return null;
  const r = await Raw.open(o, { tls: true, localAddress }).catch(() => null);
  if (!r) return null;
  const left = () => Math.max(1000, until - Date.now());
  await r.send(HEADER(o.domain));
  if (!(await r.wait(/<\/stream:features>/, left()))) { r.destroy(); return null; }
  r.text = '';
  await r.send(`<auth xmlns='${SASL}' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${password}`).toString('base64')}</auth>`);
  if (!(await r.wait(/<success/, left()))) { r.destroy(); return null; }
  r.text = '';
  await r.send(HEADER(o.domain));
  if (!(await r.wait(/<\/stream:features>/, left()))) { r.destroy(); return null; }
  r.text = '';
  await r.send(`<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`);
  if (!(await r.wait(/<jid>/, left()))) { r.destroy(); return null; }
  r.text = '';
  return r;
}

// --- the corpus --------------------------------------------------------------------------------

const LAUGHS = `<!DOCTYPE lolz [<!ENTITY lol "lol">` +
  Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i === 0 ? '' : i};`.repeat(10)}">`).join('') + ']>';

/**
 * What the server should do: 'prompt' = end the stream at once (within 5 s); 'eventually' = end
 * it, but reading is slowed by the byte-rate shaper first (within the authentication timeout);
 * 'stays' = an ordinary session that abuses nothing the server must close it for (bounded).
 */
type Expect = 'prompt' | 'eventually' | 'stays';
interface CorpusItem { name: string; expect: Expect; auth?: boolean; run(r: Raw, o: Options): Promise<void> }

const CORPUS: CorpusItem[] = [
  { name: 'billion laughs', expect: 'prompt', run: (r, o) => r.send(`<?xml version='1.0'?>${LAUGHS}${HEADER(o.domain).slice(21)}<message><body>&lol9;</body></message>`) },
  { name: 'external entity (SYSTEM)', expect: 'prompt', run: (r, o) => r.send(`<?xml version='1.0'?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>${HEADER(o.domain).slice(21)}<message><body>&xxe;</body></message>`) },
  { name: 'comment', expect: 'prompt', run: (r, o) => r.send(`${HEADER(o.domain)}<!-- hi -->`) },
  { name: 'processing instruction', expect: 'prompt', run: (r, o) => r.send(`${HEADER(o.domain)}<?evil?>`) },
  { name: 'entity reference', expect: 'prompt', run: (r, o) => r.send(`${HEADER(o.domain)}<message><body>&xxe;</body></message>`) },
  { name: 'stream header over 8 KiB', expect: 'prompt', run: (r) => r.send(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${'a'.repeat(12_000)}'>`) },
  { name: 'deep nesting (100 levels)', expect: 'prompt', run: (r, o) => r.send(`${HEADER(o.domain)}${'<a>'.repeat(100)}`) },
  { name: '100 attributes', expect: 'prompt', run: (r, o) => r.send(`${HEADER(o.domain)}<a ${Array.from({ length: 100 }, (_, i) => `a${i}='1'`).join(' ')}/>`) },
  { name: 'invalid UTF-8', expect: 'prompt', run: (r, o) => r.send(Buffer.concat([Buffer.from(`${HEADER(o.domain)}<message><body>`), Buffer.from([0xe6, 0x9d, 0x41, 0xff])])) },
  { name: 'jabber:server stream on c2s', expect: 'prompt', run: (r, o) => r.send(HEADER(o.domain, 'jabber:server')) },
  { name: 'wrong streams namespace', expect: 'prompt', run: (r, o) => r.send(`<stream:stream xmlns='jabber:client' xmlns:stream='urn:evil' to='${o.domain}' version='1.0'>`) },
  { name: 'garbage', expect: 'prompt', run: (r) => r.send(Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) & 0xff))) },
  { name: 'stanza before TLS', expect: 'prompt', run: (r, o) => r.send(`${HEADER(o.domain)}<message to='${o.user}@${o.domain}'><body>in the clear</body></message>`) },
  { name: 'huge stream header (1 MB)', expect: 'eventually', run: async (r) => { await r.send(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='`); for (let i = 0; i < 64 && !r.isClosed; i++) await r.send('a'.repeat(16384)); } },
  { name: 'huge stanza before TLS (4 MB)', expect: 'eventually', run: async (r, o) => { await r.send(`${HEADER(o.domain)}<message><body>`); for (let i = 0; i < 256 && !r.isClosed; i++) await r.send('a'.repeat(16384)); } },
  { name: 'deep nesting (100 000 levels)', expect: 'eventually', run: (r, o) => r.send(`${HEADER(o.domain)}${'<a>'.repeat(100_000)}`) },
  // Authenticated (with --attacker-user): the connection is logged in and bound first.
  { name: 'auth: oversized stanza', expect: 'prompt', auth: true, run: async (r) => { await r.send(`<message to='x@y'><body>`); for (let i = 0; i < 20 && !r.isClosed; i++) await r.send('a'.repeat(16384)); } },
  { name: 'auth: message in jabber:server', expect: 'prompt', auth: true, run: (r, o) => r.send(`<message xmlns='jabber:server' to='${o.user}@${o.domain}' from='${o.domain}'><body>x</body></message>`) },
  { name: 'auth: spoofed from and malformed to', expect: 'stays', auth: true, run: async (r, o) => {
    for (let i = 0; i < 200; i++) {
      await r.send(`<message to='${o.user}@${o.domain}' from='admin@${o.domain}/x' type='chat'><body>spoof ${i}</body></message><message to='@' type='chat'/><iq to='a@b@c' id='x${i}' type='get'><ping xmlns='urn:xmpp:ping'/></iq>`);
    }
  } },
  { name: 'auth: 10 000 IQs without reading', expect: 'stays', auth: true, run: async (r, o) => {
    r.sock.pause();
    let batch = '';
    for (let i = 0; i < 10_000; i++) {
      batch += `<iq type='get' id='f${i}' to='${o.domain}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`;
      if (i % 200 === 199) { r.sock.write(batch); batch = ''; }
    }
    await delay(3000);
  } },
];

interface CorpusResult { name: string; expect: Expect; runs: number; outcomes: Record<string, number>; maxMsToClose: number }

/** The whole corpus, each item on a connection of its own, all items at once and repeatedly. */
async function corpusLoop(o: Options, deadline: number, results: Map<string, CorpusResult>): Promise<void> {
  const items = CORPUS.filter((c) => !c.auth || (o.attackerUser && o.tlsPort));
  let conns = 0;
  const one = async (item: CorpusItem): Promise<void> => {
    const res = results.get(item.name) ?? { name: item.name, expect: item.expect, runs: 0, outcomes: {}, maxMsToClose: 0 };
    results.set(item.name, res);
    // Each from its own address: the per-address limit on unauthenticated connections would
    // otherwise answer before the input is even read.
    const n = conns++;
    const src = `127.1.${Math.floor(n / 250) % 250}.${1 + (n % 250)}`;
    const r = item.auth ? await login(o, o.attackerUser!, o.attackerPassword ?? '', src, deadline + 3000) : await Raw.open(o, { localAddress: src }).catch(() => null);
    res.runs++;
    const count = (k: string) => { res.outcomes[k] = (res.outcomes[k] ?? 0) + 1; };
    if (!r) return count('could not connect or log in');
    const t0 = performance.now();
    // Writes stall once the server stops reading (shaper, backpressure): give up at the end.
    await Promise.race([item.run(r, o).catch(() => undefined), r.closed, delay(Math.max(0, deadline - Date.now()))]);
    r.sock.resume();
    const wait = item.expect === 'stays' ? 500 : item.expect === 'prompt' ? 5000 : Math.max(5000, deadline + 3000 - Date.now());
    await Promise.race([r.closed, delay(wait)]);
    if (r.isClosed) res.maxMsToClose = Math.max(res.maxMsToClose, Math.round(performance.now() - t0));
    count(r.streamError ? `stream error ${r.streamError}` : r.isClosed ? 'closed without stream error'
      : item.expect === 'stays' ? 'session stayed up' : `still open after ${Math.round(wait / 1000)} s`);
    r.destroy();
  };
  // Each item over and over (a short pause between runs bounds the rate), independently: the
  // slow ones do not hold up the others.
  await Promise.all(items.map(async (item) => {
    while (Date.now() < deadline) {
      await one(item);
      await delay(200);
    }
  }));
}

// --- SASL guessing -------------------------------------------------------------------------------

interface GuessResult { attempts: number; outcomes: Record<string, number> }

async function guessLoop(o: Options, deadline: number, res: GuessResult): Promise<void> {
  if (!o.tlsPort) return;
  for (let i = 0; Date.now() < deadline; i++) {
    const r = await Raw.open(o, { tls: true, localAddress: `127.0.3.${1 + (i % 20)}` }).catch(() => null);
    if (!r) { await delay(100); continue; }
    await r.send(HEADER(o.domain));
    if (await r.wait(/<\/stream:features>/, 5000)) {
      for (let k = 0; k < 5 && Date.now() < deadline && !r.isClosed; k++) {
        r.text = '';
        await r.send(`<auth xmlns='${SASL}' mechanism='PLAIN'>${Buffer.from(`\0${o.user}\0guess ${i}-${k}`).toString('base64')}</auth>`);
        const m = await r.wait(/<success|<failure[^>]*>\s*<([a-z-]+)/, Math.max(1000, deadline + 2000 - Date.now()));
        res.attempts++;
        const outcome = m ? (m[0].startsWith('<success') ? 'SUCCESS (!)' : m[1]!) : r.streamError ? `stream error ${r.streamError}` : 'no answer before the end (delayed)';
        res.outcomes[outcome] = (res.outcomes[outcome] ?? 0) + 1;
      }
    }
    r.destroy();
  }
}

// --- the connection flood ----------------------------------------------------------------------

interface FloodResult {
  attempts: number; connected: number; refused: number; closedByServer: number; streamErrors: Record<string, number>;
  openNow: number; openAtEnd: number; peakOpen: number;
}

async function floodLoop(o: Options, deadline: number, res: FloodResult): Promise<void> {
  const open = new Set<Raw>();
  const maxAttempts = o.connections * 20;
  const kinds = ['idle', 'header', 'slow header', ...(o.tlsPort ? ['tls idle'] : [])];
  const holding = new Set<Promise<void>>();
  /** Opens one connection; resolves once it is open (or failed), holding it in the background. */
  const one = async (i: number): Promise<void> => {
    res.attempts++;
    const kind = kinds[i % kinds.length]!;
    const src = o.sources > 1 ? `127.0.1.${1 + (i % o.sources)}` : undefined;
    const r = await Raw.open(o, { tls: kind === 'tls idle', localAddress: src, timeoutMs: 5000 }).catch(() => null);
    if (!r) { res.refused++; return; }
    res.connected++;
    open.add(r);
    res.peakOpen = Math.max(res.peakOpen, open.size);
    if (kind === 'header') void r.send(HEADER(o.domain));
    const hold = (async () => {
      if (kind === 'slow header') {
        const h = HEADER(o.domain);
        for (let k = 0; k < h.length && !r.isClosed && Date.now() < deadline; k++) { await r.send(h[k]!); await delay(1000); }
      }
      await Promise.race([r.closed, delay(Math.max(0, deadline - Date.now()))]);
      if (r.isClosed) {
        res.closedByServer++;
        const e = r.streamError;
        if (e) res.streamErrors[e] = (res.streamErrors[e] ?? 0) + 1;
      }
      open.delete(r);
      r.destroy();
    })();
    holding.add(hold);
    void hold.then(() => holding.delete(hold));
  };
  // Keep `connections` connections open (reopening what the server closes), at most 200 connecting at a time.
  let next = 0;
  let connecting = 0;
  const workers = Array.from({ length: Math.min(200, o.connections) }, async () => {
    while (Date.now() < deadline && res.attempts < maxAttempts) {
      if (open.size + connecting >= o.connections) { await delay(50); continue; }
      connecting++;
      await one(next++).finally(() => connecting--);
    }
  });
  const atEnd = setTimeout(() => { res.openAtEnd = open.size; }, Math.max(0, deadline - Date.now() - 50));
  const now = setInterval(() => { res.openNow = open.size; }, 500);
  await Promise.all(workers);
  clearInterval(now);
  await Promise.all(holding);
  clearTimeout(atEnd);
  for (const r of open) r.destroy();
}

// --- the normal client -------------------------------------------------------------------------

interface Served { pings: number[]; messages: number[]; failures: string[]; reconnects: number; logins: number[]; loginFailures: string[] }

async function normalClient(o: Options, deadline: number, res: Served): Promise<void> {
  const server = { domain: o.domain, ports: { c2s: o.port, directTls: o.tlsPort }, caFile: o.ca, host: o.host };
  const waiting = new Map<string, () => void>();
  const onStanza = (raw: Buffer) => {
    const id = rawAttr(raw, 'id');
    if (id !== undefined) waiting.get(id)?.();
  };
  let client: XmppClient | undefined;
  let seq = 0;
  while (Date.now() < deadline) {
    const t0 = performance.now();
    try {
      if (!client || client.closed) {
        if (client) res.reconnects++;
        client = await connect({ server, user: o.user, password: o.password, resource: 'normal', presence: false, onStanza, stepTimeoutMs: o.maxLatency * 5 });
      }
      const ping = performance.now();
      await client.ping(o.maxLatency * 5);
      res.pings.push(performance.now() - ping);
      const id = `n${++seq}`;
      const m0 = performance.now();
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => { waiting.delete(id); reject(new Error(`message ${id} not back within ${o.maxLatency * 5} ms`)); }, o.maxLatency * 5);
        waiting.set(id, () => { clearTimeout(timer); waiting.delete(id); resolve(); });
        client!.send(`<message to='${client!.jid}' id='${id}' type='chat'><body>tick ${seq}</body></message>`);
      });
      res.messages.push(performance.now() - m0);
    } catch (e) {
      res.failures.push(`${new Date().toISOString()} ${(e as Error).message}`);
    }
    await delay(Math.max(0, 1000 - (performance.now() - t0)));
  }
  await client?.close().catch(() => undefined);
}

/** Every 10 s a fresh login of the normal user (with the right password): can it still get in? */
async function freshLogins(o: Options, deadline: number, res: Served): Promise<void> {
  const server = { domain: o.domain, ports: { c2s: o.port, directTls: o.tlsPort }, caFile: o.ca, host: o.host };
  while (Date.now() + 10_000 < deadline) {
    await delay(10_000);
    const t0 = performance.now();
    try {
      const c = await connect({ server, user: o.user, password: o.password, resource: `fresh${Date.now()}`, stepTimeoutMs: 30_000 });
      res.logins.push(performance.now() - t0);
      await c.close().catch(() => undefined);
    } catch (e) {
      res.loginFailures.push((e as Error).message);
    }
  }
}

// --- server stats --------------------------------------------------------------------------------

interface ServerStats { rssStartMB: number; rssPeakMB: number; rssEndMB: number; cpuSeconds: number; alive: boolean }

async function sample(pid: number): Promise<{ rss: number; cpu: number } | null> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
    return { rss: Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024, cpu: (Number(stat[11]) + Number(stat[12])) / 100 };
  } catch {
    return null;
  }
}

// --- main ----------------------------------------------------------------------------------------

/** What --json prints. */
export interface AttackReport {
  servedThroughout: boolean;
  normalClient: {
    pings: number; pingMs: { p50: number; p99: number; max: number };
    messages: number; messageRoundTripMs: { p50: number; p99: number; max: number };
    slowerThanMaxLatency: number; failures: string[]; reconnects: number;
    freshLogins: { ok: number; msMax: number; failures: string[] };
  };
  flood: FloodResult;
  saslGuessing: GuessResult;
  corpus: CorpusResult[];
  server: ServerStats | undefined;
}

const fmt = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : '-');

async function main(): Promise<number> {
  const o = parseOptions(process.argv.slice(2));
  const log = (s: string) => process.stderr.write(`${s}\n`);
  log(`attacking ${o.host}:${o.port}${o.tlsPort ? ` (Direct TLS ${o.tlsPort})` : ''} for ${o.duration} s: ${o.connections} flood connections from ${o.sources} addresses`);
  const served: Served = { pings: [], messages: [], failures: [], reconnects: 0, logins: [], loginFailures: [] };
  const start = o.pid ? await sample(o.pid) : null;
  let peak = start?.rss ?? 0;

  // The normal client logs in before the attack and runs 3 s past its end.
  const t0 = Date.now();
  const normal = normalClient(o, t0 + (o.duration + 5) * 1000, served);
  await delay(2000);
  const deadline = Date.now() + o.duration * 1000;
  const corpus = new Map<string, CorpusResult>();
  const flood: FloodResult = { attempts: 0, connected: 0, refused: 0, closedByServer: 0, streamErrors: {}, openNow: 0, openAtEnd: 0, peakOpen: 0 };
  const guesses: GuessResult = { attempts: 0, outcomes: {} };
  const sampler = setInterval(() => {
    if (o.pid) void sample(o.pid).then((s) => { if (s) peak = Math.max(peak, s.rss); });
    log(`  ${Math.max(0, Math.round((deadline - Date.now()) / 1000))} s left: flood ${flood.openNow} open, ${flood.attempts} attempts; normal client ${served.pings.length} pings, ${served.failures.length} failures`);
  }, 5000);
  await Promise.all([
    corpusLoop(o, deadline, corpus), floodLoop(o, deadline, flood), guessLoop(o, deadline, guesses), freshLogins(o, deadline, served),
  ]);
  clearInterval(sampler);
  await normal;
  const end = o.pid ? await sample(o.pid) : null;
  const server: ServerStats | undefined = o.pid ? {
    rssStartMB: start?.rss ?? NaN, rssPeakMB: Math.max(peak, end?.rss ?? 0), rssEndMB: end?.rss ?? NaN,
    cpuSeconds: end && start ? end.cpu - start.cpu : NaN, alive: end !== null,
  } : undefined;

  const sorted = (a: number[]) => [...a].sort((x, y) => x - y);
  const pings = sorted(served.pings);
  const msgs = sorted(served.messages);
  const slow = [...pings, ...msgs].filter((v) => v > o.maxLatency).length;
  const ok = served.failures.length === 0 && served.reconnects === 0 && slow === 0 && pings.length > 0 && (server?.alive ?? true);
  const report: AttackReport = {
    servedThroughout: ok,
    normalClient: {
      pings: pings.length, pingMs: { p50: percentile(pings, 50), p99: percentile(pings, 99), max: pings.at(-1) ?? NaN },
      messages: msgs.length, messageRoundTripMs: { p50: percentile(msgs, 50), p99: percentile(msgs, 99), max: msgs.at(-1) ?? NaN },
      slowerThanMaxLatency: slow, failures: served.failures, reconnects: served.reconnects,
      freshLogins: { ok: served.logins.length, msMax: Math.max(0, ...served.logins), failures: served.loginFailures },
    },
    flood, saslGuessing: guesses, corpus: [...corpus.values()], server,
  };
  if (o.json) {
    process.stdout.write(JSON.stringify(report) + '\n');
  } else {
    const p = report.normalClient;
    const lines = [
      `normal client: ${ok ? 'SERVED THROUGHOUT' : 'NOT SERVED THROUGHOUT'}`,
      `  pings ${p.pings}: p50 ${fmt(p.pingMs.p50)} ms, p99 ${fmt(p.pingMs.p99)} ms, max ${fmt(p.pingMs.max)} ms`,
      `  messages ${p.messages}: p50 ${fmt(p.messageRoundTripMs.p50)} ms, p99 ${fmt(p.messageRoundTripMs.p99)} ms, max ${fmt(p.messageRoundTripMs.max)} ms`,
      `  over ${o.maxLatency} ms: ${slow}; failures: ${p.failures.length}; reconnects: ${p.reconnects}`,
      ...p.failures.slice(0, 10).map((f) => `    ${f}`),
      `  fresh logins with the right password: ${p.freshLogins.ok} ok (slowest ${fmt(p.freshLogins.msMax)} ms), ${p.freshLogins.failures.length} failed`,
      ...p.freshLogins.failures.slice(0, 5).map((f) => `    ${f}`),
      `flood: ${flood.attempts} attempts, ${flood.connected} connected, ${flood.refused} refused or timed out, at most ${flood.peakOpen} open at once, ${flood.openAtEnd} at the end;`,
      `  ${flood.closedByServer} closed by the server (stream errors: ${JSON.stringify(flood.streamErrors)})`,
      `SASL guessing: ${guesses.attempts} attempts: ${JSON.stringify(guesses.outcomes)}`,
      'corpus (outcome: count, slowest close):',
      ...[...corpus.values()].map((c) => `  ${c.name.padEnd(38)} ${JSON.stringify(c.outcomes)} ${c.maxMsToClose} ms`),
      ...(server ? [`server: RSS ${fmt(server.rssStartMB)} -> peak ${fmt(server.rssPeakMB)} -> ${fmt(server.rssEndMB)} MB, CPU ${fmt(server.cpuSeconds)} s, ${server.alive ? 'alive' : 'GONE'}`] : []),
    ];
    process.stdout.write(lines.join('\n') + '\n');
  }
  return ok ? 0 : 1;
}

main().then((code) => process.exit(code), (e: unknown) => {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exit(2);
});
