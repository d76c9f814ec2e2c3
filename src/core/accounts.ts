// Account operations shared by the server (self-service, control socket) and modules.
import { deriveCredentials } from './auth/scram.ts';
import { Jid } from '../jid/index.ts';
import { StreamError } from '../xmpp/errors.ts';
import type { Storage } from '../storage/index.ts';
import type { Logger } from '../observability/log.ts';
import type { HookBus } from './hooks.ts';
import type { SessionRegistry } from './sessions/registry.ts';
import type { AccountOps } from './modules/services.ts';
import type { CredentialUpgrade } from './auth/mechanisms.ts';
import type { IterationCensus } from './auth/census.ts';

export function createAccountOps(d: { storage: Storage; registry: SessionRegistry; hooks: HookBus; log: Logger; iterations: number }): AccountOps {
  return {
    async exists(host, username) {
      return (await d.storage.accounts.get(host, username)) !== null;
    },
    async setPassword(host, username, password) {
      const credentials = await deriveCredentials(password, d.iterations);
      const ok = await d.storage.accounts.setCredentials(host, username, credentials);
      if (ok) {
        d.log.info({ jid: `${username}@${host}` }, 'password changed');
        await d.hooks.emit('user:password-changed', { host, username });
      }
      return ok;
    },
    async delete(host, username) {
      const bare = Jid.of(username, host);
      if (!(await d.storage.accounts.get(host, username))) return false;
      // Close first and wait for the 'session:closed' handlers (which may record things, such as
      // the last logout for XEP-0012), then purge: nothing the account owns is written after it.
      await Promise.all(d.registry.resources(bare).map((s) => s.close(new StreamError('not-authorized', 'Account deleted'))));
      const ok = await d.storage.accounts.delete(host, username);
      if (ok) {
        d.log.info({ jid: bare.toString() }, 'account deleted');
        await d.hooks.emit('user:deleted', { host, username });
      }
      return ok;
    },
  };
}

/**
 * Stores stronger credentials after a PLAIN login (the `upgrade` of its success step, when the
 * stored ones have fewer iterations than configured): derives them (async PBKDF2, both hashes,
 * new salts) and replaces the stored ones only if they are still those the password was checked
 * against, so that a password change meanwhile wins. Runs after <success/> was sent and never
 * throws: a failure is logged (never with the password) and the account keeps its credentials.
 * Not a password change: no 'user:password-changed' (which would close the other sessions).
 */
export async function upgradeCredentials(
  d: { storage: Storage; log: Logger; census?: IterationCensus },
  host: string,
  username: string,
  upgrade: CredentialUpgrade,
): Promise<boolean> {
  const jid = `${username}@${host}`;
  try {
    const next = await upgrade.derive();
    const ok = await d.storage.accounts.setCredentials(host, username, next, upgrade.from);
    if (!ok) {
      d.log.debug({ jid }, 'credentials changed during the login: not upgraded');
      return false;
    }
    d.census?.invalidate(host);
    d.log.info({ jid, from: upgrade.from['SHA-1']?.iterations, iterations: upgrade.iterations }, 'stored credentials upgraded to the configured iteration count');
    return true;
  } catch (err) {
    d.log.warn({ jid, err: err instanceof Error ? err.message : String(err) }, 'upgrading the stored credentials failed; the account keeps its old ones');
    return false;
  }
}
