// The subscription state machine against RFC 6121 Appendix A, row by row, plus pre-approval
// (§3.4), the auto-reply (§3.1.3), and a two-party simulation of every interleaving of
// "both subscribe at once".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { STATES, fromName, inbound, outbound, stateName, type StateName, type SubState, type SubscriptionType } from './subscription.ts';

// Appendix A as printed: "existing state | new state" (and for A.3 the "deliver?" column). Written
// out independently of the tables in subscription.ts, so a typo in either shows up here.
// '-' = no state change.
const A2: Record<SubscriptionType, string> = {
  // A.2.1
  subscribe: `
    None                  | None+PendingOut
    None+PendingOut       | -
    None+PendingIn        | None+PendingOut+In
    None+PendingOut+In    | -
    To                    | -
    To+PendingIn          | -
    From                  | From+PendingOut
    From+PendingOut       | -
    Both                  | -`,
  // A.2.2
  unsubscribe: `
    None                  | -
    None+PendingOut       | None
    None+PendingIn        | -
    None+PendingOut+In    | None+PendingIn
    To                    | None
    To+PendingIn          | None+PendingIn
    From                  | -
    From+PendingOut       | From
    Both                  | From`,
  // A.2.3
  subscribed: `
    None                  | -
    None+PendingOut       | -
    None+PendingIn        | From
    None+PendingOut+In    | From+PendingOut
    To                    | -
    To+PendingIn          | Both
    From                  | -
    From+PendingOut       | -
    Both                  | -`,
  // A.2.4
  unsubscribed: `
    None                  | -
    None+PendingOut       | -
    None+PendingIn        | None
    None+PendingOut+In    | None+PendingOut
    To                    | -
    To+PendingIn          | To
    From                  | None
    From+PendingOut       | None+PendingOut
    Both                  | To`,
};

const A3: Record<SubscriptionType, string> = {
  // A.3.1 (the "no *" rows: auto-reply subscribed)
  subscribe: `
    None                  | yes | None+PendingIn
    None+PendingOut       | yes | None+PendingOut+In
    None+PendingIn        | no  | -
    None+PendingOut+In    | no  | -
    To                    | yes | To+PendingIn
    To+PendingIn          | no  | -
    From                  | no  | -
    From+PendingOut       | no  | -
    Both                  | no  | -`,
  // A.3.2
  unsubscribe: `
    None                  | no  | -
    None+PendingOut       | no  | -
    None+PendingIn        | yes | None
    None+PendingOut+In    | yes | None+PendingOut
    To                    | no  | -
    To+PendingIn          | yes | To
    From                  | yes | None
    From+PendingOut       | yes | None+PendingOut
    Both                  | yes | To`,
  // A.3.3
  subscribed: `
    None                  | no  | -
    None+PendingOut       | yes | To
    None+PendingIn        | no  | -
    None+PendingOut+In    | yes | To+PendingIn
    To                    | no  | -
    To+PendingIn          | no  | -
    From                  | no  | -
    From+PendingOut       | yes | Both
    Both                  | no  | -`,
  // A.3.4
  unsubscribed: `
    None                  | no  | -
    None+PendingOut       | yes | None
    None+PendingIn        | no  | -
    None+PendingOut+In    | yes | None+PendingIn
    To                    | yes | None
    To+PendingIn          | yes | None+PendingIn
    From                  | no  | -
    From+PendingOut       | yes | From
    Both                  | yes | From`,
};

const rows = (t: string) => t.trim().split('\n').map((l) => l.split('|').map((c) => c.trim()));
const TYPES: SubscriptionType[] = ['subscribe', 'unsubscribe', 'subscribed', 'unsubscribed'];
const name = (s: SubState) => stateName(s);

test('state names round-trip for all nine states of Appendix A.1', () => {
  for (const s of STATES) assert.equal(stateName(fromName(s)), s);
});

for (const type of TYPES) {
  test(`Appendix A.2 outbound ${type}: every row`, () => {
    const table = rows(A2[type]);
    assert.equal(table.length, 9);
    for (const [from, to] of table) {
      const cur = fromName(from as StateName);
      const o = outbound(type, cur);
      assert.equal(name(o.next), to === '-' ? from : to, `${type} in ${from}`);
    }
  });

  test(`Appendix A.3 inbound ${type}: every row, with the deliver column`, () => {
    const table = rows(A3[type]);
    assert.equal(table.length, 9);
    for (const [from, deliver, to] of table) {
      const o = inbound(type, fromName(from as StateName));
      assert.equal(name(o.next), to === '-' ? from : to, `${type} in ${from}`);
      assert.equal(o.pass, deliver === 'yes', `${type} in ${from}: deliver`);
      assert.equal(o.changed, to !== '-', `${type} in ${from}: changed`);
    }
  });
}

test('§3.1.3: inbound subscribe when the contact already has a subscription from the user → auto-reply subscribed', () => {
  for (const s of ['From', 'From+PendingOut', 'Both'] as const) {
    const o = inbound('subscribe', fromName(s));
    assert.equal(o.reply, 'subscribed', s);
    assert.equal(o.pass, false);
    assert.equal(o.changed, false);
  }
  for (const s of ['None', 'None+PendingOut', 'To', 'None+PendingIn'] as const) assert.equal(inbound('subscribe', fromName(s)).reply, undefined, s);
});

test('§3.1.2/§3.3.2: outbound subscribe and unsubscribe are always routed', () => {
  for (const s of STATES) {
    assert.equal(outbound('subscribe', fromName(s)).pass, true);
    assert.equal(outbound('unsubscribe', fromName(s)).pass, true);
  }
});

test('§3.1.5: outbound subscribed is routed only when it answers a pending request, and the contact then gets presence', () => {
  for (const s of STATES) {
    const o = outbound('subscribed', fromName(s));
    assert.equal(o.pass, fromName(s).pendingIn, s);
    assert.equal(o.presence, o.pass ? 'available' : undefined, s);
  }
});

test('§3.2.1: cancelling the contact\'s subscription sends it unavailable presence; denying a request does not', () => {
  assert.equal(outbound('unsubscribed', fromName('Both')).presence, 'unavailable');
  assert.equal(outbound('unsubscribed', fromName('From')).presence, 'unavailable');
  assert.equal(outbound('unsubscribed', fromName('None+PendingIn')).presence, undefined);
  assert.equal(outbound('unsubscribed', fromName('None+PendingIn')).pass, true);
  assert.equal(outbound('unsubscribed', fromName('To')).pass, false);
});

test('§3.3.3: an inbound unsubscribe that ends the contact\'s subscription owes it unavailable presence', () => {
  assert.equal(inbound('unsubscribe', fromName('Both')).presence, 'unavailable');
  assert.equal(inbound('unsubscribe', fromName('From+PendingOut')).presence, 'unavailable');
  assert.equal(inbound('unsubscribe', fromName('To+PendingIn')).presence, undefined);
});

test('§3.4: outbound subscribed without a pending request pre-approves in None, None+PendingOut, To; ignored in From, Both', () => {
  for (const s of ['None', 'None+PendingOut', 'To'] as const) {
    const o = outbound('subscribed', fromName(s));
    assert.equal(o.pass, false, `${s}: never routed`);
    assert.equal(o.next.approved, true, s);
    assert.equal(name(o.next), s, `${s}: no subscription change`);
    assert.equal(o.changed, true);
  }
  for (const s of ['From', 'From+PendingOut', 'Both'] as const) {
    const o = outbound('subscribed', fromName(s));
    assert.equal(o.next.approved, false, s);
    assert.equal(o.changed, false, s);
  }
});

test('§3.4: an inbound subscribe to a user who pre-approved is approved on the user\'s behalf', () => {
  const cases: [StateName, StateName][] = [['None', 'From'], ['None+PendingOut', 'From+PendingOut'], ['To', 'Both']];
  for (const [s, expected] of cases) {
    const o = inbound('subscribe', fromName(s, true));
    assert.equal(o.reply, 'subscribed', s);
    assert.equal(o.pass, false, `${s}: the user is not asked`);
    assert.equal(name(o.next), expected);
    assert.equal(o.next.approved, false, 'the pre-approval is used up');
    assert.equal(o.presence, 'available', 'the new subscriber gets the user\'s presence');
  }
});

test('§3.4: outbound unsubscribed cancels a pre-approval', () => {
  const o = outbound('unsubscribed', fromName('None', true));
  assert.equal(o.next.approved, false);
  assert.equal(o.changed, true);
  assert.equal(o.pass, false, 'nothing to tell the contact');
  // inbound unsubscribed concerns the user's subscription to the contact: the pre-approval stays
  assert.equal(inbound('unsubscribed', fromName('To', true)).next.approved, true);
});

// Two users, both local: each side's state plus the stanzas in flight. Both subscribe at once and
// both approve whatever request they see; every interleaving must end in 'both' on both sides.
test('both subscribe at once: every interleaving ends with Both on both sides', () => {
  type Side = 'a' | 'b';
  interface World { st: Record<Side, SubState>; inflight: { to: Side; type: SubscriptionType }[]; todo: Record<Side, SubscriptionType[]> }
  const other = (s: Side): Side => (s === 'a' ? 'b' : 'a');
  let finals = 0;
  const explore = (w: World, depth: number) => {
    assert.ok(depth < 40, 'terminates');
    const moves: (() => World)[] = [];
    for (const side of ['a', 'b'] as Side[]) {
      const [first, ...rest] = w.todo[side];
      if (first) {
        moves.push(() => {
          const o = outbound(first, w.st[side]);
          return {
            st: { ...w.st, [side]: o.next },
            inflight: o.pass ? [...w.inflight, { to: other(side), type: first }] : w.inflight,
            todo: { ...w.todo, [side]: rest },
          };
        });
      }
    }
    w.inflight.forEach((m, i) => {
      moves.push(() => {
        const o = inbound(m.type, w.st[m.to]);
        const inflight = w.inflight.filter((_, j) => j !== i);
        const todo = { ...w.todo };
        // the user's client approves a delivered request
        if (m.type === 'subscribe' && o.pass) todo[m.to] = [...todo[m.to], 'subscribed'];
        if (o.reply) inflight.push({ to: other(m.to), type: o.reply });
        return { st: { ...w.st, [m.to]: o.next }, inflight, todo };
      });
    });
    if (moves.length === 0) {
      assert.equal(name(w.st.a), 'Both');
      assert.equal(name(w.st.b), 'Both');
      finals++;
      return;
    }
    for (const m of moves) explore(m(), depth + 1);
  };
  const none = fromName('None');
  explore({ st: { a: none, b: none }, inflight: [], todo: { a: ['subscribe'], b: ['subscribe'] } }, 0);
  assert.ok(finals > 10, `explored ${finals} interleavings`);
});

test('a client that approves before the request reaches it (pre-approval) still ends in Both', () => {
  // a: subscribe (routed), b: subscribed before a's request arrived → pre-approval; then the request arrives
  let a = outbound('subscribe', fromName('None')).next;
  let b = outbound('subscribed', fromName('None')).next;
  assert.equal(b.approved, true);
  const inB = inbound('subscribe', b);
  b = inB.next;
  assert.equal(inB.reply, 'subscribed');
  a = inbound('subscribed', a).next;
  assert.equal(name(a), 'To');
  assert.equal(name(b), 'From');
});
