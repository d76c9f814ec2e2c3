export { Jid, JidError } from './jid.ts';
export { prepLocalpart, prepResource, prepDomain, saslprepPassword, prepNickname, nicknameKey } from './precis.ts';
