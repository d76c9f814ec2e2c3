import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { z } from 'zod';
import { TLS12_CIPHERS } from '../tls/policy.ts';
import { configReference } from './docs.ts';
import { suggestKey } from './errors.ts';
import { defOf, unwrap } from './introspect.ts';
import { ConfigError, devConfig, loadConfig, parseConfig } from './load.ts';
import { MODULE_PRESETS, mergeModulePresets } from './presets.ts';
import { ConfigSchema } from './schema.ts';

/** The issues of the ConfigError thrown by `fn`, as "path: message" lines. */
function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.issues.map((i) => `${i.path}: ${i.message}`);
  }
  assert.fail('expected a ConfigError');
}

async function loadProblems(p: Promise<unknown>): Promise<ConfigError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a ConfigError');
}

const valid = (extra: Record<string, unknown> = {}) => ({ hosts: ['example.org'], ...extra });

describe('config defaults', () => {
  it('fills every default from the schema', () => {
    const c = parseConfig({ hosts: ['example.org'] }, '/etc/amsel');
    assert.deepEqual(c.hosts, ['example.org']);
    assert.equal(c.dataDir, '/var/lib/amsel');
    assert.deepEqual(c.storage, { type: 'sqlite', path: '/var/lib/amsel/amsel.db' });
    assert.deepEqual(c.tls, { certificates: [], minVersion: 'TLSv1.2', ciphers: TLS12_CIPHERS, ticketKeyRotationMs: 3_600_000 });
    assert.deepEqual(c.listeners, {
      c2s: { enabled: true, port: 5222, address: ['::'] },
      c2sDirectTls: { enabled: true, port: 5223, address: ['::'] },
      s2s: { enabled: false, port: 5269, address: ['::'] },
    });
    assert.deepEqual(c.limits, {
      maxStanzaBytes: 262144,
      maxS2sStanzaBytes: 524288,
      maxDepth: 64,
      maxAttributes: 64,
      maxHeaderBytes: 8192,
      tlsHandshakeTimeoutMs: 10000,
      authTimeoutMs: 30000,
      maxUnauthenticatedPerIp: 10,
      maxUnauthenticatedTotal: 2000,
      maxResourcesPerAccount: 10,
      bytesPerSecond: 51200,
      burstBytes: 262144,
      unauthenticatedBytesPerSecond: 4096,
      unauthenticatedBurstBytes: 16384,
      maxIqsInFlight: 128,
      outputPauseBytes: 1_048_576,
      maxOutputBytes: 16_777_216,
    });
    assert.deepEqual(c.auth, {
      mechanisms: ['SCRAM-SHA-1', 'SCRAM-SHA-256', 'SCRAM-SHA-1-PLUS', 'SCRAM-SHA-256-PLUS', 'PLAIN'],
      allowPlain: true,
      scramIterations: 4096,
      channelBindings: ['tls-exporter', 'tls-server-end-point'],
      failureDelayMs: 250,
      maxFailureDelayMs: 30000,
      refuseAfterFailures: 20,
      refuseForMs: 300_000,
      failureMemoryMs: 900_000,
    });
    assert.deepEqual(c.sessions, { replaceOnConflict: true, legacySession: true, pingIntervalMs: 300000 });
    assert.deepEqual(c.log, { level: 'info', format: 'json' });
    assert.deepEqual(c.contact, { admin: [], abuse: [], security: [], support: [] });
    assert.deepEqual(c.modules, MODULE_PRESETS);
    assert.equal(c.modules.register, false);
  });

  it('lower-cases hosts and accepts IDNs', () => {
    const c = parseConfig({ hosts: ['Example.ORG', 'bücher.example', 'localhost'] }, '/');
    assert.deepEqual(c.hosts, ['example.org', 'bücher.example', 'localhost']);
  });

  it('accepts a single listener address as a string', () => {
    const c = parseConfig(valid({ listeners: { c2s: { address: '0.0.0.0', port: 0 } } }), '/');
    assert.deepEqual(c.listeners.c2s.address, ['0.0.0.0']);
    assert.equal(c.listeners.c2s.port, 0);
  });

  it('merges module settings over the presets', () => {
    const c = parseConfig(valid({ modules: { mam: { retentionDays: 7 }, muc: false, register: true, ping: true } }), '/');
    assert.deepEqual(c.modules, {
      mam: { retentionDays: 7 },
      muc: false,
      upload: MODULE_PRESETS.upload,
      register: true,
      ping: true,
    });
    assert.deepEqual(mergeModulePresets({ upload: true }).upload, MODULE_PRESETS.upload);
  });

  it('devConfig is valid and local', () => {
    const c = devConfig('/tmp/amsel-dev-test');
    assert.deepEqual(c.hosts, ['localhost']);
    assert.equal(c.dataDir, '/tmp/amsel-dev-test');
    assert.equal(c.storage.type === 'sqlite' && c.storage.path, '/tmp/amsel-dev-test/amsel.db');
    assert.deepEqual(c.tls.certificates, [
      { cert: '/tmp/amsel-dev-test/tls/localhost.crt', key: '/tmp/amsel-dev-test/tls/localhost.key' },
    ]);
    assert.deepEqual(c.listeners.c2s.address, ['127.0.0.1']);
    assert.equal(c.listeners.s2s.enabled, false);
    assert.equal(c.modules.register, false);
  });
});

describe('config errors name the key', () => {
  it('missing hosts', () => {
    assert.deepEqual(problems(() => parseConfig({}, '/')), ['hosts: required']);
    assert.deepEqual(problems(() => parseConfig({ hosts: [] }, '/')), ['hosts: must list at least one domain']);
  });

  it('wrong type', () => {
    assert.deepEqual(problems(() => parseConfig(valid({ auth: { allowPlain: 'yes' } }), '/')), [
      'auth.allowPlain: must be true or false',
    ]);
    assert.deepEqual(problems(() => parseConfig(valid({ limits: 5 }), '/')), ['limits: expected a mapping, got number 5']);
    assert.deepEqual(problems(() => parseConfig({ hosts: 'example.org' }, '/')), ['hosts: must be a list of domain names']);
  });

  it('out-of-range and non-integer ports', () => {
    const msg = 'must be an integer between 1 and 65535 (or 0 for any free port)';
    assert.deepEqual(problems(() => parseConfig(valid({ listeners: { c2s: { port: 70000 } } }), '/')), [`listeners.c2s.port: ${msg}`]);
    assert.deepEqual(problems(() => parseConfig(valid({ listeners: { s2s: { port: -1 } } }), '/')), [`listeners.s2s.port: ${msg}`]);
    assert.deepEqual(problems(() => parseConfig(valid({ listeners: { c2sDirectTls: { port: '5223' } } }), '/')), [
      `listeners.c2sDirectTls.port: ${msg}`,
    ]);
    assert.deepEqual(problems(() => parseConfig(valid({ listeners: { c2s: { port: 52.5 } } }), '/')), [`listeners.c2s.port: ${msg}`]);
  });

  it('listeners sharing a port', () => {
    assert.deepEqual(problems(() => parseConfig(valid({ listeners: { s2s: { enabled: true, port: 5222 } } }), '/')), [
      'listeners.s2s.port: port 5222 is already used by listeners.c2s',
    ]);
    // disabled or on port 0: no clash
    parseConfig(valid({ listeners: { c2s: { port: 0 }, c2sDirectTls: { port: 0 }, s2s: { port: 5222 } } }), '/');
  });

  it('unknown keys, with a suggestion when one is close', () => {
    assert.deepEqual(problems(() => parseConfig(valid({ tls: { certs: [] } }), '/')), [
      "tls.certs: unknown key (did you mean 'certificates'?)",
    ]);
    assert.deepEqual(problems(() => parseConfig(valid({ tls: { min_version: 'TLSv1.3' } }), '/')), [
      "tls.min_version: unknown key (did you mean 'minVersion'?)",
    ]);
    assert.deepEqual(problems(() => parseConfig({ host: ['example.org'] }, '/')), [
      'hosts: required',
      "host: unknown key (did you mean 'hosts'?)",
    ]);
    assert.deepEqual(problems(() => parseConfig(valid({ log: { colour: true } }), '/')), [
      'log.colour: unknown key (allowed: level, format)',
    ]);
    assert.deepEqual(problems(() => parseConfig(valid({ tls: { certificates: [{ cert: 'a', key: 'b', chain: 'c' }] } }), '/')), [
      "tls.certificates[0].chain: unknown key (allowed: cert, key)",
    ]);
    // the branch of the storage union is chosen by `type`
    assert.deepEqual(problems(() => parseConfig(valid({ storage: { type: 'postgres', url: 'postgres://x/y', pool: 3 } }), '/')), [
      "storage.pool: unknown key (did you mean 'poolSize'?)",
    ]);
  });

  it('TLS 1.0/1.1 are refused with a reason', () => {
    assert.deepEqual(problems(() => parseConfig(valid({ limits: { outputPauseBytes: 2_000_000, maxOutputBytes: 1_000_000 } }), '/')), [
      'limits.maxOutputBytes: must be at least limits.outputPauseBytes (2000000)',
    ]);
    assert.deepEqual(problems(() => parseConfig(valid({ tls: { ticketKeyRotationMs: 1000 } }), '/')).length, 1);
    const [p] = problems(() => parseConfig(valid({ tls: { minVersion: 'TLSv1.1' } }), '/'));
    assert.match(p!, /^tls\.minVersion: 'TLSv1\.1' is not allowed: .*RFC 8996.*'TLSv1\.2' or 'TLSv1\.3'/);
    assert.match(problems(() => parseConfig(valid({ tls: { minVersion: 'TLSv1' } }), '/'))[0]!, /^tls\.minVersion: 'TLSv1' is not allowed/);
    assert.deepEqual(problems(() => parseConfig(valid({ tls: { minVersion: 'TLS1.3' } }), '/')), [
      "tls.minVersion: must be 'TLSv1.2' or 'TLSv1.3'",
    ]);
  });

  it('cipher lists without forward secrecy or AEAD are refused', () => {
    assert.deepEqual(problems(() => parseConfig(valid({ tls: { ciphers: 'ECDHE-RSA-AES128-GCM-SHA256:AES128-GCM-SHA256' } }), '/')), [
      "tls.ciphers: 'AES128-GCM-SHA256' has no forward secrecy (only ECDHE key exchange is allowed)",
    ]);
    assert.match(problems(() => parseConfig(valid({ tls: { ciphers: 'ECDHE-RSA-AES128-SHA' } }), '/'))[0]!, /not an AEAD suite/);
    assert.match(problems(() => parseConfig(valid({ tls: { ciphers: 'HIGH:!aNULL' } }), '/'))[0]!, /cipher expressions/);
    assert.match(problems(() => parseConfig(valid({ tls: { ciphers: 'DHE-RSA-AES128-GCM-SHA256' } }), '/'))[0]!, /^tls\.ciphers: .*need tls\.dhParam/);
    parseConfig(valid({ tls: { ciphers: 'ECDHE-ECDSA-CHACHA20-POLY1305' } }), '/');
  });

  it('bad domains', () => {
    assert.deepEqual(problems(() => parseConfig({ hosts: ['example.org', 'exa mple.org', '192.0.2.1', '-bad.org', 'example.org.'] }, '/')), [
      "hosts[1]: 'exa mple.org' is not a valid domain name (contains whitespace)",
      "hosts[2]: '192.0.2.1' is an IP address; a virtual host must be a domain name",
      "hosts[3]: '-bad.org' is not a valid domain name (label '-bad')",
      "hosts[4]: 'example.org.' must not end with a dot",
    ]);
    assert.deepEqual(problems(() => parseConfig({ hosts: ['a.org', 'A.org'] }, '/')), ['hosts: must not list a domain twice']);
  });

  it('other ranges and enums', () => {
    assert.deepEqual(problems(() => parseConfig(valid({ auth: { scramIterations: 1000 } }), '/')), [
      'auth.scramIterations: must be an integer between 4096 and 1000000',
    ]);
    assert.deepEqual(problems(() => parseConfig(valid({ auth: { mechanisms: ['SCRAM-SHA-1', 'DIGEST-MD5'] } }), '/')), [
      "auth.mechanisms[1]: must be one of 'SCRAM-SHA-1', 'SCRAM-SHA-256', 'SCRAM-SHA-1-PLUS', 'SCRAM-SHA-256-PLUS', 'PLAIN'",
    ]);
    assert.deepEqual(problems(() => parseConfig(valid({ auth: { failureDelayMs: 500, maxFailureDelayMs: 100 } }), '/')), [
      'auth.maxFailureDelayMs: must be at least auth.failureDelayMs (500)',
    ]);
    assert.deepEqual(problems(() => parseConfig(valid({ storage: { type: 'mysql' } }), '/')), [
      "storage.type: must be one of 'sqlite', 'postgres'",
    ]);
    assert.deepEqual(problems(() => parseConfig(valid({ storage: { type: 'postgres' } }), '/')), ['storage.url: required']);
    assert.deepEqual(problems(() => parseConfig(valid({ contact: { abuse: ['abuse@example.org'] } }), '/')), [
      'contact.abuse[0]: must be a URI such as mailto:abuse@example.org or xmpp:admin@example.org',
    ]);
    assert.deepEqual(problems(() => parseConfig(valid({ modules: { mam: 3 } }), '/')), [
      'modules.mam: must be true, false or a mapping of module settings',
    ]);
  });

  it('reports every problem at once, in one message', () => {
    const err = (() => {
      try {
        parseConfig({ tls: { minVersion: 'TLSv1.1' }, listeners: { c2s: { port: 99999 } } }, '/');
      } catch (e) {
        return e as ConfigError;
      }
      throw new Error('no error');
    })();
    assert.equal(err.issues.length, 3);
    assert.equal(err.code, 'AMSEL_E_CONFIG');
    assert.match(err.message, /^ {2}hosts: required$/m);
    assert.match(err.message, /^ {2}listeners\.c2s\.port: must be an integer between 1 and 65535/m);
    assert.match(err.message, /^ {2}tls\.minVersion: 'TLSv1\.1' is not allowed/m);
  });

  it('suggestKey', () => {
    assert.equal(suggestKey('certs', ['certificates', 'minVersion', 'ciphers', 'dhParam']), 'certificates');
    assert.equal(suggestKey('cipher', ['certificates', 'minVersion', 'ciphers', 'dhParam']), 'ciphers');
    assert.equal(suggestKey('max-stanza-bytes', ['maxStanzaBytes', 'maxDepth']), 'maxStanzaBytes');
    assert.equal(suggestKey('zzz', ['level', 'format']), undefined);
  });
});

describe('loadConfig', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'amsel-config-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const write = async (name: string, text: string) => {
    const file = join(dir, name);
    await writeFile(file, text);
    return file;
  };

  it('loads a full valid file', async () => {
    const file = await write(
      'full.yaml',
      `# a public service
hosts: [example.org, example.net]
dataDir: /srv/amsel
storage:
  type: postgres
  url: postgres://amsel@db/amsel
  poolSize: 20
tls:
  certificates:
    - cert: /etc/letsencrypt/live/example.org/fullchain.pem
      key: /etc/letsencrypt/live/example.org/privkey.pem
  minVersion: TLSv1.3
listeners:
  c2s: { port: 5222, address: ['::', 0.0.0.0] }
  c2sDirectTls: { port: 443 }
  s2s: { enabled: true }
limits:
  maxStanzaBytes: 100000
auth:
  mechanisms: [SCRAM-SHA-256-PLUS, SCRAM-SHA-256, SCRAM-SHA-1]
  allowPlain: false
  scramIterations: 10000
sessions:
  replaceOnConflict: false
log: { level: warn, format: pretty }
contact:
  abuse: ['mailto:abuse@example.org', 'xmpp:abuse@example.org']
modules:
  mam: { retentionDays: 90 }
`,
    );
    const c = await loadConfig(file);
    assert.deepEqual(c.hosts, ['example.org', 'example.net']);
    assert.deepEqual(c.storage, { type: 'postgres', url: 'postgres://amsel@db/amsel', poolSize: 20 });
    assert.equal(c.tls.minVersion, 'TLSv1.3');
    assert.deepEqual(c.listeners.c2s.address, ['::', '0.0.0.0']);
    assert.equal(c.listeners.c2sDirectTls.port, 443);
    assert.equal(c.listeners.s2s.enabled, true);
    assert.equal(c.limits.maxStanzaBytes, 100000);
    assert.equal(c.limits.maxDepth, 64);
    assert.deepEqual(c.auth.mechanisms, ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256', 'SCRAM-SHA-1']);
    assert.equal(c.auth.allowPlain, false);
    assert.equal(c.sessions.replaceOnConflict, false);
    assert.equal(c.sessions.legacySession, true);
    assert.deepEqual(c.log, { level: 'warn', format: 'pretty' });
    assert.deepEqual(c.contact.abuse, ['mailto:abuse@example.org', 'xmpp:abuse@example.org']);
    assert.deepEqual(c.modules.mam, { retentionDays: 90 });
    assert.deepEqual(c.modules.muc, MODULE_PRESETS.muc);
  });

  it('resolves relative paths against the config file directory', async () => {
    const file = await write(
      'relative.yaml',
      `hosts: [example.org]
dataDir: data
tls:
  certificates:
    - { cert: certs/example.crt, key: ../keys/example.key }
    - { cert: /abs/other.crt, key: /abs/other.key }
  dhParam: dh.pem
  ciphers: DHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256
`,
    );
    const c = await loadConfig(file);
    assert.equal(c.dataDir, join(dir, 'data'));
    assert.equal(c.storage.type === 'sqlite' && c.storage.path, join(dir, 'data', 'amsel.db'));
    assert.deepEqual(c.tls.certificates, [
      { cert: join(dir, 'certs/example.crt'), key: join(dir, '../keys/example.key') },
      { cert: '/abs/other.crt', key: '/abs/other.key' },
    ]);
    assert.equal(c.tls.dhParam, join(dir, 'dh.pem'));

    const s = parseConfig({ hosts: ['example.org'], storage: { type: 'sqlite', path: 'db/amsel.db' } }, '/etc/amsel');
    assert.equal(s.storage.type === 'sqlite' && s.storage.path, '/etc/amsel/db/amsel.db');
  });

  it('applies overrides before validation', async () => {
    const file = await write('over.yaml', 'hosts: [example.org]\nlog: { level: info, format: json }\n');
    const c = await loadConfig(file, { log: { level: 'debug' }, listeners: { c2s: { port: 0 } } });
    assert.deepEqual(c.log, { level: 'debug', format: 'json' });
    assert.equal(c.listeners.c2s.port, 0);
  });

  it('YAML syntax errors give file:line:col', async () => {
    const file = await write('bad.yaml', 'hosts: [example.org]\nlisteners:\n  c2s: { port: 5222\nlog: x\n');
    const err = await loadProblems(loadConfig(file));
    assert.match(err.message, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:4:1: YAML syntax error`));
    const dup = await write('dup.yaml', 'hosts: [example.org]\nhosts: [example.net]\n');
    assert.match((await loadProblems(loadConfig(dup))).message, /dup\.yaml:\d+:\d+: YAML syntax error: Map keys must be unique/);
  });

  it('validation errors carry the line of the key', async () => {
    const file = await write('invalid.yaml', 'hosts: [example.org]\nlisteners:\n  c2s:\n    port: 70000\ntls:\n  certs: []\n');
    const err = await loadProblems(loadConfig(file));
    assert.deepEqual(
      err.issues.map((i) => [i.path, i.location]),
      [
        ['tls.certs', `${file}:6:3`],
        ['listeners.c2s.port', `${file}:4:5`],
      ].sort((a, b) => (a[0]! < b[0]! ? 1 : -1)),
    );
    assert.match(err.message, /listeners\.c2s\.port: must be an integer between 1 and 65535 .*\(.*invalid\.yaml:4:5\)/);
  });

  it('an empty file reports the missing hosts; a missing file is named', async () => {
    const empty = await write('empty.yaml', '# nothing yet\n');
    assert.deepEqual((await loadProblems(loadConfig(empty))).issues.map((i) => `${i.path}: ${i.message}`), ['hosts: required']);
    assert.match((await loadProblems(loadConfig(join(dir, 'nope.yaml')))).message, /nope\.yaml: file not found/);
  });
});

describe('config reference', () => {
  it('every key is described', () => {
    const missing: string[] = [];
    const walk = (schema: z.ZodType, path: string) => {
      const u = unwrap(schema);
      const def = defOf(u.core);
      if (def.type === 'object') {
        for (const [k, child] of Object.entries(def.shape ?? {})) {
          const p = path ? `${path}.${k}` : k;
          if (!unwrap(child).description) missing.push(p);
          walk(child, p);
        }
      } else if (def.type === 'array' && def.element) walk(def.element, `${path}[]`);
      else if (def.type === 'union') for (const o of def.options ?? []) walk(o, path);
    };
    walk(ConfigSchema, '');
    assert.deepEqual(missing, []);
  });

  it('documents keys, types and defaults', () => {
    const md = configReference();
    assert.match(md, /^# Amsel configuration reference/);
    assert.match(md, /\| `hosts` \| list of domain name \| \*\*required\*\* \|/);
    assert.match(md, /\| `listeners\.c2s\.port` \| integer 0–65535 \| `5222` \|/);
    assert.match(md, /\| `tls\.minVersion` \| `TLSv1\.2` \\\| `TLSv1\.3` \| `TLSv1\.2` \|/);
    assert.match(md, /\| `auth\.scramIterations` \| integer 4096–1000000 \| `4096` \|/);
    assert.match(md, /\| `storage\.url` \| string \| \*\*required\*\* \|/);
    assert.match(md, /### `tls\.certificates\[\]`/);
    assert.match(md, /retentionDays: 30/);
    assert.ok(md.includes(TLS12_CIPHERS));
  });
});
