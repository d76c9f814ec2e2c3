// `openssl s_client` against a test server: the second, independent TLS stack of the TLS tests
// (test/c2s/tls-policy.test.ts, test/security/tls-hardening.test.ts).
import { spawn } from 'node:child_process';
import type { Writable } from 'node:stream';
import type { TestServer } from '../../src/testing/index.ts';

export type TlsTransport = 'direct' | 'starttls';
export const TLS_TRANSPORTS: readonly TlsTransport[] = ['direct', 'starttls'];

/** s_client arguments that reach `srv` over Direct TLS (ALPN xmpp-client) or XMPP STARTTLS. */
export function sClientTarget(srv: Pick<TestServer, 'ports'>, t: TlsTransport): string[] {
  return t === 'direct'
    ? ['-connect', `127.0.0.1:${srv.ports.c2sDirectTls}`, '-servername', 'localhost', '-alpn', 'xmpp-client']
    : ['-connect', `127.0.0.1:${srv.ports.c2s}`, '-starttls', 'xmpp', '-xmpphost', 'localhost'];
}

export interface SClientResult { code: number | null; out: string; err: string }

/**
 * Run `openssl s_client` (killed after 10 s). Without `onOutput`, stdin is closed at once: it
 * handshakes, then closes the connection. With it, stdin stays open for commands (e.g. 'R') and
 * `onOutput` sees the stdout so far after each chunk.
 */
export function sClient(args: string[], onOutput?: (out: string, stdin: Writable) => void): Promise<SClientResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('openssl', ['s_client', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      onOutput?.(out, child.stdin);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.on('error', reject);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, out, err }); });
    if (!onOutput) child.stdin.end();
  });
}
