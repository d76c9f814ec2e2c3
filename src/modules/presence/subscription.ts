// The presence subscription state machine of RFC 6121 §3, as the tables of Appendix A.
// Pure: no I/O. The module reads the roster item and the pending inbound request, asks
// `outbound()` / `inbound()` what to do, and performs the effects.
//
// A state is one of the nine of Appendix A.1 (subscription + "Pending Out" = ask='subscribe'
// + "Pending In" = an unanswered inbound request), plus the pre-approval flag of §3.4.
import type { Subscription } from '../roster/service.ts';

export type SubscriptionType = 'subscribe' | 'subscribed' | 'unsubscribe' | 'unsubscribed';

export type StateName =
  | 'None' | 'None+PendingOut' | 'None+PendingIn' | 'None+PendingOut+In'
  | 'To' | 'To+PendingIn' | 'From' | 'From+PendingOut' | 'Both';

export const STATES: readonly StateName[] = [
  'None', 'None+PendingOut', 'None+PendingIn', 'None+PendingOut+In',
  'To', 'To+PendingIn', 'From', 'From+PendingOut', 'Both',
];

export interface SubState {
  subscription: Subscription;
  /** ask='subscribe': the user's request to the contact is unanswered. */
  pendingOut: boolean;
  /** The contact's request to the user is unanswered. */
  pendingIn: boolean;
  /** The user pre-approved the contact's subscription (§3.4). */
  approved: boolean;
}

export function stateName(s: Omit<SubState, 'approved'>): StateName {
  switch (s.subscription) {
    case 'none': return s.pendingOut ? (s.pendingIn ? 'None+PendingOut+In' : 'None+PendingOut') : (s.pendingIn ? 'None+PendingIn' : 'None');
    // 'To' already has the contact's presence: no pending out; 'From' gave it: no pending in.
    case 'to': return s.pendingIn ? 'To+PendingIn' : 'To';
    case 'from': return s.pendingOut ? 'From+PendingOut' : 'From';
    case 'both': return 'Both';
  }
}

export function fromName(name: StateName, approved = false): SubState {
  const [sub, ...flags] = name.split('+');
  const f = flags.join('+');
  return {
    subscription: sub!.toLowerCase() as Subscription,
    pendingOut: f === 'PendingOut' || f === 'PendingOut+In',
    pendingIn: f === 'PendingIn' || f === 'PendingOut+In',
    approved,
  };
}

/** A row: the new state (undefined = no state change) and whether the stanza goes on. */
type Row = readonly [next: StateName | undefined, pass: boolean];
type Table = Readonly<Record<StateName, Row>>;

// Appendix A.2: the user's server processing presence the user sends. `pass` = route it to the contact.
// A.2.1 subscribe: always routed, also when already subscribed, so that the contact's server can
// re-synchronise by auto-replying (§3.1.2, §3.1.3).
const OUT_SUBSCRIBE: Table = {
  'None': ['None+PendingOut', true],
  'None+PendingOut': [undefined, true],
  'None+PendingIn': ['None+PendingOut+In', true],
  'None+PendingOut+In': [undefined, true],
  'To': [undefined, true],
  'To+PendingIn': [undefined, true],
  'From': ['From+PendingOut', true],
  'From+PendingOut': [undefined, true],
  'Both': [undefined, true],
};
// A.2.2 unsubscribe: always routed (§3.3.2).
const OUT_UNSUBSCRIBE: Table = {
  'None': [undefined, true],
  'None+PendingOut': ['None', true],
  'None+PendingIn': [undefined, true],
  'None+PendingOut+In': ['None+PendingIn', true],
  'To': ['None', true],
  'To+PendingIn': ['None+PendingIn', true],
  'From': [undefined, true],
  'From+PendingOut': ['From', true],
  'Both': ['From', true],
};
// A.2.3 subscribed: routed only when it answers a pending request (§3.1.5); otherwise it is a
// pre-approval (§3.4, handled in outbound()) or ignored.
const OUT_SUBSCRIBED: Table = {
  'None': [undefined, false],
  'None+PendingOut': [undefined, false],
  'None+PendingIn': ['From', true],
  'None+PendingOut+In': ['From+PendingOut', true],
  'To': [undefined, false],
  'To+PendingIn': ['Both', true],
  'From': [undefined, false],
  'From+PendingOut': [undefined, false],
  'Both': [undefined, false],
};
// A.2.4 unsubscribed: routed when it denies a pending request or cancels the contact's
// subscription (§3.2.2); otherwise there is nothing to tell the contact.
const OUT_UNSUBSCRIBED: Table = {
  'None': [undefined, false],
  'None+PendingOut': [undefined, false],
  'None+PendingIn': ['None', true],
  'None+PendingOut+In': ['None+PendingOut', true],
  'To': [undefined, false],
  'To+PendingIn': ['To', true],
  'From': ['None', true],
  'From+PendingOut': ['None+PendingOut', true],
  'Both': ['To', true],
};

// Appendix A.3: the user's server processing presence a contact sent to the user. `pass` =
// deliver it to the user's available resources.
// A.3.1 subscribe (in From/From+PendingOut/Both: not delivered, auto-reply "subscribed", §3.1.3).
const IN_SUBSCRIBE: Table = {
  'None': ['None+PendingIn', true],
  'None+PendingOut': ['None+PendingOut+In', true],
  'None+PendingIn': [undefined, false],
  'None+PendingOut+In': [undefined, false],
  'To': ['To+PendingIn', true],
  'To+PendingIn': [undefined, false],
  'From': [undefined, false],
  'From+PendingOut': [undefined, false],
  'Both': [undefined, false],
};
// A.3.2 unsubscribe (§3.3.3): the same transitions as A.2.4 — whichever side ends the
// contact's subscription to the user, the user's item loses 'from' and any pending request.
const IN_UNSUBSCRIBE: Table = OUT_UNSUBSCRIBED;
// A.3.3 subscribed: only accepted when the user asked (§3.1.6); unsolicited approvals are ignored.
const IN_SUBSCRIBED: Table = {
  'None': [undefined, false],
  'None+PendingOut': ['To', true],
  'None+PendingIn': [undefined, false],
  'None+PendingOut+In': ['To+PendingIn', true],
  'To': [undefined, false],
  'To+PendingIn': [undefined, false],
  'From': [undefined, false],
  'From+PendingOut': ['Both', true],
  'Both': [undefined, false],
};
// A.3.4 unsubscribed (§3.2.3).
const IN_UNSUBSCRIBED: Table = {
  'None': [undefined, false],
  'None+PendingOut': ['None', true],
  'None+PendingIn': [undefined, false],
  'None+PendingOut+In': ['None+PendingIn', true],
  'To': ['None', true],
  'To+PendingIn': ['None+PendingIn', true],
  'From': [undefined, false],
  'From+PendingOut': ['From', true],
  'Both': ['From', true],
};

export const TABLES = {
  outbound: { subscribe: OUT_SUBSCRIBE, unsubscribe: OUT_UNSUBSCRIBE, subscribed: OUT_SUBSCRIBED, unsubscribed: OUT_UNSUBSCRIBED },
  inbound: { subscribe: IN_SUBSCRIBE, unsubscribe: IN_UNSUBSCRIBE, subscribed: IN_SUBSCRIBED, unsubscribed: IN_UNSUBSCRIBED },
} as const;

export interface Outcome {
  next: SubState;
  /** Something in `next` differs from the current state. */
  changed: boolean;
  /** Outbound: route the stanza to the contact. Inbound: deliver it to the user's available resources. */
  pass: boolean;
  /** Inbound only: answer the contact with this on the user's behalf (§3.1.3 auto-reply, §3.4 pre-approval). */
  reply?: 'subscribed';
  /**
   * Presence the user's available resources now owe the contact: their current presence when the
   * contact just got a subscription (§3.1.5), unavailable when it lost one (§3.2.1, §3.3.3).
   */
  presence?: 'available' | 'unavailable';
}

const hasFrom = (s: Subscription) => s === 'from' || s === 'both';

function apply(table: Table, cur: SubState): { next: SubState; pass: boolean } {
  const [nextName, pass] = table[stateName(cur)];
  return { next: nextName ? fromName(nextName, cur.approved) : { ...cur }, pass };
}

function outcome(cur: SubState, next: SubState, pass: boolean, extra: Partial<Outcome> = {}): Outcome {
  // The pre-approval flag only means something while the contact has no subscription from the
  // user; once it has one (or it is cancelled) the flag is cleared (§3.4).
  if (hasFrom(next.subscription)) next = { ...next, approved: false };
  const changed = next.subscription !== cur.subscription || next.pendingOut !== cur.pendingOut
    || next.pendingIn !== cur.pendingIn || next.approved !== cur.approved;
  let presence: Outcome['presence'];
  if (!hasFrom(cur.subscription) && hasFrom(next.subscription)) presence = 'available';
  else if (hasFrom(cur.subscription) && !hasFrom(next.subscription)) presence = 'unavailable';
  return { next, changed, pass, ...(presence ? { presence } : {}), ...extra };
}

/** The user sends `type` to the contact (Appendix A.2, §3.4 pre-approval). */
export function outbound(type: SubscriptionType, cur: SubState): Outcome {
  const { next, pass } = apply(TABLES.outbound[type], cur);
  if (type === 'subscribed' && !pass) {
    // §3.4.1: "subscribed" with no pending request. In None, None+PendingOut and To it is a
    // pre-approval: noted (approved='true'), never routed. In From, From+PendingOut and Both
    // the contact is subscribed already: ignored.
    if (!hasFrom(cur.subscription)) return outcome(cur, { ...cur, approved: true }, false);
    return outcome(cur, cur, false);
  }
  if (type === 'unsubscribed') {
    // §3.4: "unsubscribed" also cancels a pre-approval.
    return outcome(cur, { ...next, approved: false }, pass);
  }
  return outcome(cur, next, pass);
}

/** The contact sent `type` to the user (Appendix A.3, §3.1.3 auto-reply, §3.4 pre-approval). */
export function inbound(type: SubscriptionType, cur: SubState): Outcome {
  if (type === 'subscribe') {
    // §3.1.3: already subscribed → auto-reply "subscribed", don't bother the user.
    if (hasFrom(cur.subscription)) return outcome(cur, cur, false, { reply: 'subscribed', presence: 'available' });
    // §3.4: pre-approved → approve on the user's behalf, don't deliver.
    if (cur.approved && !cur.pendingIn) {
      const approvedNext: SubState = { ...cur, subscription: cur.subscription === 'to' ? 'both' : 'from', pendingIn: false, approved: false };
      return outcome(cur, approvedNext, false, { reply: 'subscribed' });
    }
  }
  const { next, pass } = apply(TABLES.inbound[type], cur);
  return outcome(cur, next, pass);
}
