// XEP-0077 In-Band Registration, the self-service part only (issue 3 item 7): on an
// authenticated stream a user reads their registration (§3.1 <registered/>), changes the
// password (§3.3) and deletes the account (§3.2). Registering new accounts in-band is not
// offered: no stream feature (§8) and, before authentication, the c2s transport refuses
// jabber:iq:register IQs with <not-allowed/> (src/transports/c2s/connection.ts). The `register`
// entry in src/config/presets.ts (off) is for that registration part, a separate module.
//
// Settings (modules.account):
//   allowPasswordChange                  true   §3.3; false → <not-allowed/>
//   allowAccountDeletion                 true   §3.2; false → <not-allowed/>
//   closeOtherSessionsOnPasswordChange   true   other sessions of the account end with the
//                                                <reset/> stream error (also after `amsel passwd`)
//   minPasswordLength                    8      code points after OpaqueString preparation
//   maxPasswordLength                    1024
import { z } from 'zod';
import { defineModule } from '../../core/modules/define.ts';
import type { RoutedStanza } from '../../core/router/router.ts';
import type { Session } from '../../core/sessions/session.ts';
import { Jid, JidError, prepLocalpart, saslprepPassword } from '../../jid/index.ts';
import { x, type XmlElement } from '../../xml/index.ts';
import { StanzaError, StreamError } from '../../xmpp/errors.ts';
import { iqResult } from '../../xmpp/stanza.ts';

export const NS_REGISTER = 'jabber:iq:register';
const NS_XDATA = 'jabber:x:data';

export const accountConfig = z.strictObject({
  allowPasswordChange: z.boolean().default(true)
    .describe('Let users change their password from the client (XEP-0077 §3.3).'),
  allowAccountDeletion: z.boolean().default(true)
    .describe('Let users delete their account from the client (XEP-0077 §3.2); everything it owns is removed.'),
  closeOtherSessionsOnPasswordChange: z.boolean().default(true)
    .describe('After a password change, close the account\'s other sessions with the <reset/> stream error, so that '
      + 'whoever logged in with the old password is logged out. Also applies to `amsel passwd`.'),
  minPasswordLength: z.number().int().min(1).max(1024).default(8)
    .describe('Shortest new password accepted, in characters (NIST SP 800-63B §5.1.1.2 minimum; no composition rules).'),
  maxPasswordLength: z.number().int().min(1).max(4096).default(1024)
    .describe('Longest new password accepted, in characters.'),
}).refine((c) => c.minPasswordLength <= c.maxPasswordLength, { message: 'minPasswordLength must not exceed maxPasswordLength' });

export type AccountConfig = z.infer<typeof accountConfig>;

export default defineModule({
  name: 'account',
  specs: [{ xep: 77, version: '2.4', status: 'partial', note: 'password change and account removal on an authenticated stream; no in-band registration, no data forms' }],
  defaultEnabled: true,
  config: accountConfig,
  setup(ctx) {
    const cfg = ctx.config;
    // Sessions whose own password change is in progress: the hook below spares them.
    const changing = new Set<Session>();

    // XEP-0077 §10 Determining Support: connected clients look for this feature to offer a
    // password change (the §10 text names that use); it is not offered to anyone unauthenticated.
    if (cfg.allowPasswordChange || cfg.allowAccountDeletion) ctx.disco.feature(NS_REGISTER);

    /**
     * The requesting session, if the IQ is the user's own business: from a local client of this
     * host, addressed to the server or to the user's own bare JID (or without 'to'). Anything
     * else (another account's bare JID) is answered as if nobody handled it (RFC 6120 §8.4).
     */
    const own = (stanza: RoutedStanza, session: Session | undefined): Session => {
      if (!session || session.host !== ctx.host) throw new StanzaError('service-unavailable');
      if (stanza.addressing === 'bare' && !stanza.to.equals(session.jid.bare)) throw new StanzaError('service-unavailable');
      return session;
    };

    // §3.1: an entity that has authenticated is registered: <registered/> plus what is on file.
    // The password is never on file (SCRAM keys only), so its element is empty (allowed by §3.1).
    ctx.iq.get(NS_REGISTER, 'query', ({ stanza, session }) => {
      const s = own(stanza, session);
      return x('query', { xmlns: NS_REGISTER },
        x('registered'),
        x('instructions', null, instructions(cfg)),
        x('username', null, s.username),
        x('password'));
    }, { to: ['host', 'account'] });

    ctx.iq.set(NS_REGISTER, 'query', async ({ stanza, payload, session }) => {
      const s = own(stanza, session);
      const children = payload.elements();
      if (payload.getChild('remove', NS_REGISTER)) {
        // §3.2 table: <remove/> must be the only child.
        if (children.length !== 1) throw new StanzaError('bad-request', '<remove/> must be the only child of <query/>');
        if (!cfg.allowAccountDeletion) throw new StanzaError('not-allowed', 'Accounts cannot be deleted from the client on this server');
        await removeAccount(s, stanza);
        return undefined;
      }
      // XEP-0077 §4 (Extensibility), §6: we never send a data form, so none is expected back.
      if (payload.getChild('x', NS_XDATA)) throw new StanzaError('bad-request', 'Data forms are not supported here; send <username/> and <password/>');
      if (!cfg.allowPasswordChange) throw new StanzaError('not-allowed', 'Passwords cannot be changed from the client on this server');
      await changePassword(s, payload);
      return undefined;
    }, { to: ['host', 'account'] });

    /**
     * §3.3 password change. §3.3: errors SHOULD NOT return the request; the router's errorReply
     * still copies the payload (the new password back to its sender, over TLS): a core change.
     */
    async function changePassword(s: Session, payload: XmlElement): Promise<void> {
      // §3.3 needs the whole request: the username (bad-request when missing, as the §3.3
      // table says) and the password.
      const userEl = payload.getChild('username', NS_REGISTER);
      const passEl = payload.getChild('password', NS_REGISTER);
      if (!userEl || !passEl) throw new StanzaError('bad-request', 'Send both <username/> and <password/>');
      // The username is the session's: a localpart, or (as the §3.3 form example shows) a bare JID.
      if (!isSessionUser(userEl.text().trim(), s)) {
        // Another account: that would be registering or taking over an account, neither of which is allowed.
        throw new StanzaError('not-allowed', 'You can only change the password of the account you are logged in with');
      }
      // XEP-0077 §3.3: a deployment MAY refuse changes over unencrypted streams (every c2s stream here is encrypted).
      if (!s.secure) throw new StanzaError('not-authorized', 'Password changes need an encrypted stream');
      const password = passEl.text();
      // §3.3: an empty password is refused and the old one kept (not-acceptable, as §3.1 says for empty fields).
      if (password === '') throw new StanzaError('not-acceptable', 'The password must not be empty');
      let prepared: string;
      try {
        // RFC 8265 §4.2 OpaqueString, the profile SCRAM passwords are prepared with (RFC 5802 §2.2).
        prepared = saslprepPassword(password);
      } catch (err) {
        if (err instanceof JidError) throw new StanzaError('not-acceptable', 'The password contains characters that cannot be used in a password');
        throw err;
      }
      const length = [...prepared].length;
      if (length < cfg.minPasswordLength) throw new StanzaError('not-acceptable', `The password must have at least ${cfg.minPasswordLength} characters`);
      if (length > cfg.maxPasswordLength) throw new StanzaError('not-acceptable', `The password must have at most ${cfg.maxPasswordLength} characters`);
      changing.add(s);
      try {
        // New salts and SCRAM-SHA-1/-256 keys replace the old ones; runs 'user:password-changed'.
        if (!(await ctx.accounts.setPassword(s.username, password))) {
          // Deleted meanwhile (another session, the CLI).
          throw new StanzaError('registration-required', 'This account no longer exists');
        }
      } finally {
        changing.delete(s);
      }
      ctx.log.info({ sid: s.id, jid: s.jid.bare.toString() }, 'password changed by the user');
    }

    /**
     * §3.2 cancellation with the home server: result first, then every session of the account
     * ends with the <not-authorized/> stream error (AccountOps.delete closes them, waits for
     * their 'session:closed' handlers, then purges every row the account owns and runs 'user:deleted').
     */
    async function removeAccount(s: Session, stanza: RoutedStanza): Promise<void> {
      // The result must precede the stream error, and AccountOps.delete closes this session,
      // after which nothing more can be sent: answer now (the router's own result afterwards
      // goes nowhere, the session is closing). Same order as ejabberd's mod_register.
      s.send(iqResult(stanza.el.withAttrs({ to: stanza.to.toString() })));
      try {
        await ctx.accounts.delete(s.username);
      } catch (err) {
        // The purge runs in one transaction: nothing was deleted. The client was told otherwise,
        // so end its stream with an error instead of leaving it believing the account is gone.
        ctx.log.error({ err, sid: s.id }, 'account deletion failed');
        ctx.background('close after failed deletion', s.close(new StreamError('internal-server-error', 'Deleting the account failed; it still exists')));
        return;
      }
      ctx.log.info({ sid: s.id, jid: s.jid.bare.toString() }, 'account deleted by the user');
    }


    // After any password change of an account of this host (this module, `amsel passwd`):
    // RFC 6120 §4.9.3.18 <reset/>, the credentials the other sessions logged in with are revoked.
    ctx.on('user:password-changed', ({ host, username }) => {
      if (host !== ctx.host || !cfg.closeOtherSessionsOnPasswordChange) return;
      const others = ctx.sessions.resources(Jid.of(username, host)).filter((o) => !changing.has(o));
      for (const o of others) {
        // Not awaited in line: close() waits for the peer's socket, the answer to the change must not.
        ctx.background('close session after password change', o.close(new StreamError('reset', 'The account password was changed')));
      }
    });
  },
});

function instructions(cfg: AccountConfig): string {
  const can: string[] = [];
  if (cfg.allowPasswordChange) can.push('send a new <password/> with your <username/> to change the password');
  if (cfg.allowAccountDeletion) can.push('send <remove/> to delete the account and everything stored for it');
  return can.length ? `You are registered. You can ${can.join(', or ')}.` : 'You are registered.';
}

function isSessionUser(given: string, s: Session): boolean {
  if (given === '') return false;
  if (given.includes('@')) {
    const j = Jid.tryParse(given);
    return j !== null && j.resource === '' && j.equals(s.jid.bare);
  }
  try {
    return prepLocalpart(given) === s.username;
  } catch {
    return false;
  }
}
