// The roster service (RFC 6121 §2), provided by the roster module and used by presence and
// others. Subscription state changes (RFC 6121 §3) go through modify(), so every change is
// stored, versioned (XEP-0237) and pushed to interested resources in one place.
import type { Jid } from '../../jid/index.ts';
import type { XmlElement } from '../../xml/index.ts';
import { serviceKey } from '../../core/modules/services.ts';

export type Subscription = 'none' | 'to' | 'from' | 'both';

export interface RosterItem {
  /** The contact's bare JID. */
  readonly jid: Jid;
  readonly name?: string;
  readonly groups: readonly string[];
  readonly subscription: Subscription;
  /** An outbound subscription request is pending (ask='subscribe', RFC 6121 §3.1.2). */
  readonly ask: boolean;
  /** The user pre-approved the contact's subscription (RFC 6121 §3.4). */
  readonly approved: boolean;
}

export interface RosterService {
  get(owner: Jid, contact: Jid): Promise<RosterItem | undefined>;
  list(owner: Jid): Promise<RosterItem[]>;
  /**
   * Each owner's subscription with `contact`, keyed by the owner's bare JID string; owners without
   * an item for it, or that are no account of this host (any more), are missing. For probe
   * fan-outs (RFC 6121 §4.3.2): one read for all owners. Optional (stand-ins may leave it out):
   * callers fall back to get() per owner.
   */
  subscriptions?(owners: readonly Jid[], contact: Jid): Promise<Map<string, Subscription>>;
  /**
   * Read-modify-write one item, serialised per owner (no lost updates when both sides subscribe
   * at once). Returning undefined removes the item. A change is stored, bumps the roster version
   * and is pushed to the owner's interested resources (RFC 6121 §2.1.6); returns the new item.
   */
  modify(owner: Jid, contact: Jid, fn: (current: RosterItem | undefined) => RosterItem | undefined): Promise<RosterItem | undefined>;
  /** Inbound subscription requests not yet answered (RFC 6121 §3.1.3), kept outside the roster. */
  addPendingIn(owner: Jid, from: Jid, stanza: XmlElement): Promise<void>;
  removePendingIn(owner: Jid, from: Jid): Promise<void>;
  pendingIn(owner: Jid): Promise<{ from: Jid; stanza: XmlElement }[]>;
}

export const RosterServiceKey = serviceKey<RosterService>('roster');
