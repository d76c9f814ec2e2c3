// Account operations shared by the server (self-service, control socket) and modules.
import { deriveCredentials } from './auth/scram.ts';
import { Jid } from '../jid/index.ts';
import { StreamError } from '../xmpp/errors.ts';
import type { Storage } from '../storage/index.ts';
import type { Logger } from '../observability/log.ts';
import type { HookBus } from './hooks.ts';
import type { SessionRegistry } from './sessions/registry.ts';
import type { AccountOps } from './modules/services.ts';

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
