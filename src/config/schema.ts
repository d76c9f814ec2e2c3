// The root configuration schema: one YAML file, validated once at startup.
//
// Invariants (STYLE.md item 10): keys are camelCase; every key has `.describe()`; defaults
// live here and nowhere else; objects are strict, so a misspelt key is an error rather than
// a silently ignored setting. `docs.ts` renders the reference from this file.
//
// Paths (dataDir, storage.path, tls.certificates[].cert/key, tls.dhParam) may be relative;
// `parseConfig` resolves them against the config file's directory.

import { isIP } from 'node:net';
import { join } from 'node:path';
import { domainToASCII } from 'node:url';
import { z } from 'zod';
import { checkCipherList, TLS12_CIPHERS, TLS_MIN_VERSIONS } from '../tls/policy.ts';
import { MODULE_PRESETS, mergeModulePresets } from './presets.ts';

// ---------------------------------------------------------------------------------------
// Building blocks

/**
 * Why `name` is not acceptable as a DNS domain name (RFC 1035 §2.3.1 as relaxed by RFC 1123
 * §2.1; IDNs checked in their A-label form, RFC 5890), or undefined when it is.
 */
export function domainProblem(name: string): string | undefined {
  if (name === '') return 'must not be empty';
  if (/\s/.test(name)) return `'${name}' is not a valid domain name (contains whitespace)`;
  if (isIP(name) !== 0 || name.startsWith('[')) {
    return `'${name}' is an IP address; a virtual host must be a domain name`;
  }
  if (name.endsWith('.')) return `'${name}' must not end with a dot`;
  if (name.includes('*')) return `'${name}' is not a valid domain name (wildcards are not allowed here)`;
  const ascii = domainToASCII(name);
  if (ascii === '') return `'${name}' is not a valid domain name`;
  if (ascii.length > 253) return `'${name}' is longer than 253 characters`;
  const labels = ascii.split('.');
  for (const label of labels) {
    if (!/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(label)) {
      return `'${name}' is not a valid domain name (label '${label}')`;
    }
  }
  if (/^[0-9]+$/.test(labels[labels.length - 1]!)) {
    return `'${name}' is not a valid domain name (the last label is numeric)`;
  }
  return undefined;
}

/** A schema-level message for a wrong value; a missing value still reads "required". */
const wrong = (text: string) => (iss: { input?: unknown }) => (iss.input === undefined ? 'required' : text);

const domain = () =>
  z
    .string({ error: wrong('must be a domain name') })
    .meta({ type: 'domain name' })
    .toLowerCase()
    .check((ctx) => {
      const problem = domainProblem(ctx.value);
      if (problem) ctx.issues.push({ code: 'custom', message: problem, input: ctx.value });
    });

/** A file system path; relative paths are resolved against the config file's directory. */
const filePath = () => z.string({ error: wrong('must be a file path') }).min(1, 'must not be empty').meta({ type: 'path' });

const PORT_MESSAGE = 'must be an integer between 1 and 65535 (or 0 for any free port)';
const port = () =>
  z
    .number({ error: PORT_MESSAGE })
    .int({ error: PORT_MESSAGE })
    .min(0, { error: PORT_MESSAGE })
    .max(65535, { error: PORT_MESSAGE });

const bindAddress = z
  .string({ error: wrong('must be an IP address or host name') })
  .meta({ type: 'address' })
  .check((ctx) => {
    const a = ctx.value;
    if (isIP(a) === 0 && domainProblem(a) !== undefined) {
      ctx.issues.push({ code: 'custom', message: `'${a}' is not an IP address or host name`, input: a });
    }
  });

/** One address or a list of them; always a list after parsing. */
const bindAddresses = (fallback: string[]) =>
  z
    .preprocess((v) => (typeof v === 'string' ? [v] : v), z.array(bindAddress, { error: wrong('must be an address or a list of addresses') }).min(1, 'must not be empty'))
    .default(fallback);

const positiveInt = (min: number, max = Number.MAX_SAFE_INTEGER) => {
  const msg = max === Number.MAX_SAFE_INTEGER ? `must be an integer of at least ${min}` : `must be an integer between ${min} and ${max}`;
  return z.number({ error: msg }).int({ error: msg }).min(min, { error: msg }).max(max, { error: msg });
};

/** A cross-field check: `section.upper` must be at least `section.lower` (the issue names `upper`). */
function atLeast<K extends string>(section: string, upper: K, lower: K) {
  return (ctx: { value: Record<K, number>; issues: unknown[] }) => {
    if (ctx.value[upper] < ctx.value[lower]) {
      ctx.issues.push({
        code: 'custom',
        path: [upper],
        message: `must be at least ${section}.${lower} (${ctx.value[lower]})`,
        input: ctx.value[upper],
      });
    }
  };
}

const uniqueList = <T>(list: T[]) => new Set(list).size === list.length;

// ---------------------------------------------------------------------------------------
// Sections

const StorageSchema = z
  .discriminatedUnion(
    'type',
    [
      z
        .strictObject({
          type: z.literal('sqlite').describe('Embedded SQLite database (one server, no clustering).'),
          path: filePath()
            .optional()
            .describe('Database file. Default: `<dataDir>/amsel.db`.'),
        })
        .describe('SQLite storage'),
      z
        .strictObject({
          type: z.literal('postgres').describe('PostgreSQL server (needed for clustering).'),
          url: z
            .string({ error: wrong('must be a PostgreSQL connection URL') })
            .regex(/^postgres(?:ql)?:\/\//, "must be a URL starting with 'postgres://' or 'postgresql://'")
            .describe('Connection URL, e.g. `postgres://amsel:secret@localhost/amsel`.'),
          poolSize: positiveInt(1, 1000).default(10).describe('Maximum number of pooled connections.'),
        })
        .describe('PostgreSQL storage'),
    ],
    { error: wrong("must be one of 'sqlite', 'postgres'") },
  )
  .prefault({ type: 'sqlite' })
  .describe('Where accounts, rosters, archives and other durable state are stored.');

const TlsSchema = z
  .strictObject({
    certificates: z
      .array(
        z
          .strictObject({
            cert: filePath().describe('PEM certificate file: the leaf certificate first, then intermediates.'),
            key: filePath().describe('PEM private key file for the certificate (PKCS#8, PKCS#1 or SEC1).'),
          })
          .describe('A certificate and its key.'),
        { error: wrong('must be a list of { cert, key } entries') },
      )
      .default([])
      .describe(
        'Certificates to serve. The domains each one covers are read from its subjectAltName ' +
          'entries; the certificate is chosen per connection by SNI. Every host needs one.',
      ),
    minVersion: z
      .enum(TLS_MIN_VERSIONS, {
        error: (iss) =>
          typeof iss.input === 'string' && /^(SSLv|TLSv1(\.[01])?$)/.test(iss.input)
            ? `'${iss.input}' is not allowed: SSL, TLS 1.0 and TLS 1.1 are insecure and deprecated (RFC 8996); use 'TLSv1.2' or 'TLSv1.3'`
            : "must be 'TLSv1.2' or 'TLSv1.3'",
      })
      .default('TLSv1.2')
      .describe('Lowest TLS version accepted. TLS 1.0 and 1.1 are never accepted (RFC 8996).'),
    ciphers: z
      .string({ error: wrong('must be a colon-separated list of cipher suites') })
      .check((ctx) => {
        for (const problem of checkCipherList(ctx.value, { dhParam: true })) {
          ctx.issues.push({ code: 'custom', message: problem, input: ctx.value });
        }
      })
      .default(TLS12_CIPHERS)
      .describe(
        'TLS 1.2 cipher suites in OpenSSL notation, most preferred first. Only ECDHE suites with ' +
          'an AEAD cipher are accepted (forward secrecy). TLS 1.3 suites are not affected.',
      ),
    ticketKeyRotationMs: positiveInt(60_000)
      .default(3_600_000)
      .describe(
        'How often the keys that encrypt TLS session tickets (resumption) are replaced, in milliseconds. ' +
          'A ticket key that lives forever lets anyone who later reads it from memory decrypt every ' +
          'recorded session resumed with it (no forward secrecy); a resumption that spans a rotation ' +
          'becomes a full handshake.',
      ),
    dhParam: filePath()
      .optional()
      .describe('PEM Diffie-Hellman parameters; only needed for DHE cipher suites. Default: none (ECDHE only).'),
  })
  .check((ctx) => {
    // DHE suites only with explicit parameters (the per-suite checks run on the field itself)
    const dhe = ctx.value.ciphers.split(':').filter((c) => c.trim().startsWith('DHE-'));
    if (dhe.length > 0 && ctx.value.dhParam === undefined) {
      ctx.issues.push({ code: 'custom', path: ['ciphers'], message: `${dhe.join(', ')} need tls.dhParam (finite-field DHE); prefer ECDHE suites`, input: ctx.value.ciphers });
    }
  })
  .prefault({})
  .describe('TLS settings shared by all listeners. Plaintext connections are never accepted.');

const listener = (what: string, enabled: boolean, defaultPort: number, fallback: string[]) =>
  z
    .strictObject({
      enabled: z.boolean({ error: wrong('must be true or false') }).default(enabled).describe(`Whether to accept ${what}.`),
      port: port().default(defaultPort).describe('TCP port; 0 picks any free port (tests).'),
      address: bindAddresses(fallback).describe(
        "Address or list of addresses to listen on. '::' listens on all IPv6 and (dual-stack) IPv4 addresses.",
      ),
    })
    .prefault({});

const ListenersSchema = z
  .strictObject({
    c2s: listener('client connections with mandatory STARTTLS (RFC 6120 §5)', true, 5222, ['::']).describe(
      'Client-to-server listener. STARTTLS is required before authentication.',
    ),
    c2sDirectTls: listener('client connections over Direct TLS (XEP-0368)', true, 5223, ['::']).describe(
      'Client-to-server listener speaking TLS from the first byte (XEP-0368), ALPN `xmpp-client`.',
    ),
    s2s: listener('server-to-server connections (RFC 6120, XEP-0220)', false, 5269, ['::']).describe(
      'Server-to-server (federation) listener.',
    ),
  })
  .check((ctx) => {
    // Two enabled listeners cannot share a fixed port on overlapping addresses.
    const entries = Object.entries(ctx.value).filter(([, l]) => l.enabled && l.port !== 0);
    for (let i = 0; i < entries.length; i++) {
      for (let j = 0; j < i; j++) {
        const [a, la] = entries[i]!;
        const [b, lb] = entries[j]!;
        if (la.port === lb.port && addressesOverlap(la.address, lb.address)) {
          ctx.issues.push({
            code: 'custom',
            path: [a, 'port'],
            message: `port ${la.port} is already used by listeners.${b}`,
            input: la.port,
          });
        }
      }
    }
  })
  .prefault({})
  .describe('Network listeners.');

function addressesOverlap(a: string[], b: string[]): boolean {
  const wildcard = (x: string) => x === '::' || x === '0.0.0.0';
  return a.some((x) => b.some((y) => x === y || wildcard(x) || wildcard(y)));
}

const LimitsSchema = z
  .strictObject({
    maxStanzaBytes: positiveInt(10_000)
      .default(262_144)
      .describe('Largest stanza a client may send, in bytes (RFC 6120 §13.12: at least 10000).'),
    maxS2sStanzaBytes: positiveInt(10_000)
      .default(524_288)
      .describe('Largest stanza a remote server may send, in bytes.'),
    maxDepth: positiveInt(8, 1024).default(64).describe('Deepest XML element nesting within a stanza.'),
    maxAttributes: positiveInt(8, 1024).default(64).describe('Most attributes on one XML element.'),
    maxHeaderBytes: positiveInt(1024).default(8192).describe('Largest stream header, in bytes.'),
    tlsHandshakeTimeoutMs: positiveInt(1000)
      .default(10_000)
      .describe('Time allowed for the TLS handshake, in milliseconds.'),
    authTimeoutMs: positiveInt(1000)
      .default(30_000)
      .describe('Time from connecting until authentication must be complete, in milliseconds.'),
    maxUnauthenticatedPerIp: positiveInt(1)
      .default(10)
      .describe(
        'Connections one IP address may hold open before binding a resource; further ones get ' +
          '`<policy-violation/>` at once (on the Direct TLS port they are dropped before the handshake).',
      ),
    maxUnauthenticatedTotal: positiveInt(1)
      .default(2000)
      .describe(
        'Connections the whole server holds open before they bind a resource (all addresses together: ' +
          'an attacker with many addresses gets past the per-IP limit); further ones get ' +
          '`<resource-constraint/>` at once (on the Direct TLS port they are dropped before the handshake).',
      ),
    maxResourcesPerAccount: positiveInt(1)
      .default(10)
      .describe('Sessions (resources) one account may have bound at the same time; binding one more gets `<resource-constraint/>`.'),
    bytesPerSecond: positiveInt(0)
      .default(51_200)
      .describe(
        'Sustained rate at which the server reads from one bound session, in bytes per second. A faster ' +
          'sender is slowed down (the server stops reading until the rate allows more), never cut off. 0: no limit.',
      ),
    burstBytes: positiveInt(1024)
      .default(262_144)
      .describe('Bytes a bound session may send at once before `bytesPerSecond` applies (a full bucket).'),
    unauthenticatedBytesPerSecond: positiveInt(0)
      .default(4096)
      .describe(
        'Like `bytesPerSecond`, for a connection that has not bound a resource yet (a login needs about ' +
          '2 KiB). 0: no limit.',
      ),
    unauthenticatedBurstBytes: positiveInt(1024)
      .default(16_384)
      .describe('Like `burstBytes`, for a connection that has not bound a resource yet.'),
    maxIqsInFlight: positiveInt(1)
      .default(128)
      .describe(
        'IQ requests one session may have sent to other entities (full JIDs) and not yet had answered ' +
          '(forgotten after 60 s or when the other session ends); further ones get `<resource-constraint/>` (type wait).',
      ),
    outputPauseBytes: positiveInt(16_384)
      .default(1_048_576)
      .describe(
        'Output queued for one session that its client has not read yet, in bytes, above which the server ' +
          'stops handling that session\'s input (and so stops reading from it) until the client has read ' +
          'its replies: a client that sends requests and never reads cannot make the server buffer without bound.',
      ),
    maxOutputBytes: positiveInt(65_536)
      .default(16_777_216)
      .describe(
        'Output queued for one session that its client has not read, in bytes, above which the session is ' +
          'closed with `<resource-constraint/>` (a client that others send to but that never reads). ' +
          'At least `outputPauseBytes`.',
      ),
  })
  .check(atLeast('limits', 'maxOutputBytes', 'outputPauseBytes'))
  .prefault({})
  .describe('Resource limits that protect the server from misbehaving peers.');

export const SASL_MECHANISMS = [
  'SCRAM-SHA-1',
  'SCRAM-SHA-256',
  'SCRAM-SHA-1-PLUS',
  'SCRAM-SHA-256-PLUS',
  'PLAIN',
] as const;
export type SaslMechanism = (typeof SASL_MECHANISMS)[number];

export const CHANNEL_BINDINGS = ['tls-exporter', 'tls-server-end-point', 'tls-unique'] as const;
export type ChannelBinding = (typeof CHANNEL_BINDINGS)[number];

const quoted = (xs: readonly string[]) => xs.map((x) => `'${x}'`).join(', ');

const AuthSchema = z
  .strictObject({
    mechanisms: z
      .array(z.enum(SASL_MECHANISMS, { error: `must be one of ${quoted(SASL_MECHANISMS)}` }), {
        error: 'must be a list of SASL mechanisms',
      })
      .min(1, 'must not be empty')
      .refine(uniqueList, 'must not list a mechanism twice')
      .default([...SASL_MECHANISMS])
      .describe(
        'SASL mechanisms offered (RFC 6120 §6). -PLUS variants need a channel binding; ' +
          'PLAIN also needs `allowPlain`. Mechanisms are only ever offered inside TLS.',
      ),
    allowPlain: z
      .boolean({ error: wrong('must be true or false') })
      .default(true)
      .describe('Offer SASL PLAIN (only ever inside TLS). Needed by clients that cannot do SCRAM.'),
    scramIterations: positiveInt(4096, 1_000_000)
      .default(4096)
      .describe('PBKDF2 iterations for new SCRAM credentials (RFC 7677 §4: at least 4096).'),
    channelBindings: z
      .array(z.enum(CHANNEL_BINDINGS, { error: `must be one of ${quoted(CHANNEL_BINDINGS)}` }), {
        error: 'must be a list of channel binding types',
      })
      .refine(uniqueList, 'must not list a channel binding twice')
      .default(['tls-exporter', 'tls-server-end-point'])
      .describe(
        'Channel binding types for SCRAM -PLUS, advertised with XEP-0440 (RFC 9266 tls-exporter, ' +
          'RFC 5929 tls-server-end-point; tls-unique works on TLS 1.2 only). Empty disables -PLUS.',
      ),
    failureDelayMs: positiveInt(0, 60_000)
      .default(250)
      .describe('Delay before answering a failed authentication; doubles with each further failure.'),
    maxFailureDelayMs: positiveInt(0, 600_000)
      .default(30_000)
      .describe('Upper bound for the growing failure delay, in milliseconds.'),
    refuseAfterFailures: positiveInt(1)
      .default(20)
      .describe(
        'Failed authentications from one address (an IPv6 /64) after which it is refused for ' +
          '`refuseForMs`: new attempts get `<temporary-auth-failure/>` at once. Accounts are never locked.',
      ),
    refuseForMs: positiveInt(1000)
      .default(300_000)
      .describe('How long an address is refused after `refuseAfterFailures`, in milliseconds.'),
    failureMemoryMs: positiveInt(1000)
      .default(900_000)
      .describe('Failures of an address or account are forgotten after this long without a new one, in milliseconds.'),
  })
  .check(atLeast('auth', 'maxFailureDelayMs', 'failureDelayMs'))
  .prefault({})
  .describe('Authentication (SASL).');

const SessionsSchema = z
  .strictObject({
    replaceOnConflict: z
      .boolean({ error: wrong('must be true or false') })
      .default(true)
      .describe(
        'When a client binds a resource that is already in use, end the older session with a ' +
          '<conflict/> stream error (RFC 6120 §7.7.2.2). When false, the new session is refused.',
      ),
    legacySession: z
      .boolean({ error: wrong('must be true or false') })
      .default(true)
      .describe('Advertise the optional <session/> feature for old clients (RFC 3921, RFC 6121 Appendix E).'),
    pingIntervalMs: positiveInt(0)
      .refine((v) => v === 0 || v >= 10_000, 'must be 0 (off) or at least 10000')
      .default(300_000)
      .describe('Idle time after which the server pings a client (XEP-0199), in milliseconds; 0 disables.'),
  })
  .prefault({})
  .describe('Client sessions.');

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

const LogSchema = z
  .strictObject({
    level: z
      .enum(LOG_LEVELS, { error: `must be one of ${quoted(LOG_LEVELS)}` })
      .default('info')
      .describe('Lowest level written. Message bodies and secrets are never logged at info.'),
    format: z
      .enum(['json', 'pretty'], { error: wrong("must be 'json' or 'pretty'") })
      .default('json')
      .describe("'json' (one object per line, for log collectors) or 'pretty' (for a terminal)."),
  })
  .prefault({})
  .describe('Logging.');

const contactList = (what: string) =>
  z
    .array(
      z
        .string({ error: wrong('must be a URI') })
        .meta({ type: 'URI' })
        .regex(/^[a-z][a-z0-9+.-]*:\S+$/i, 'must be a URI such as mailto:abuse@example.org or xmpp:admin@example.org'),
      { error: wrong('must be a list of URIs') },
    )
    .default([])
    .describe(what);

const ContactSchema = z
  .strictObject({
    admin: contactList('Addresses of the service administrators.'),
    abuse: contactList('Where to report abuse (spam, harassment).'),
    security: contactList('Where to report security problems.'),
    support: contactList('Where users get help.'),
  })
  .prefault({})
  .describe('Contact addresses published with XEP-0157 (URIs: mailto:, xmpp:, https:).');

const ModulesSchema = z
  .record(
    z.string(),
    z.union([z.boolean(), z.record(z.string(), z.unknown())], {
      error: 'must be true, false or a mapping of module settings',
    }),
    { error: wrong('must be a mapping from module names to true, false or settings') },
  )
  .default({ ...MODULE_PRESETS })
  .transform((m) => mergeModulePresets(m))
  .describe(
    'Modules to enable or disable, and their settings (`name: true`, `name: false` or ' +
      '`name: { ...settings }`). Settings are merged over the presets shown as the default; ' +
      'each module validates its own settings when it loads.',
  );

// ---------------------------------------------------------------------------------------
// Root

const RootSchema = z.strictObject({
  hosts: z
    .array(domain(), { error: wrong('must be a list of domain names') })
    .min(1, 'must list at least one domain')
    .refine(uniqueList, 'must not list a domain twice')
    .describe('Domains (virtual hosts) this server serves, e.g. `[example.org]`. Required.'),
  dataDir: filePath().default('/var/lib/amsel').describe('Directory for the database, uploads and other state.'),
  storage: StorageSchema,
  tls: TlsSchema,
  listeners: ListenersSchema,
  limits: LimitsSchema,
  auth: AuthSchema,
  sessions: SessionsSchema,
  log: LogSchema,
  contact: ContactSchema,
  modules: ModulesSchema,
});

/** The whole configuration file. The sqlite default path is filled in from `dataDir`. */
export const ConfigSchema = RootSchema.transform((c) => ({
  ...c,
  storage:
    c.storage.type === 'sqlite'
      ? { ...c.storage, path: c.storage.path ?? join(c.dataDir, 'amsel.db') }
      : c.storage,
}));

export type Config = z.output<typeof ConfigSchema>;
/** What may be written in the file (before defaults). */
export type ConfigInput = z.input<typeof ConfigSchema>;
