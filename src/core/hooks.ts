// Typed, closed hook names (fastify style). Modules add events by declaration merging:
//   declare module '#core/hooks' { interface HookMap { 'muc:joined': {...} } }
// Notifications run every handler in priority order; a failing handler is logged and isolated.
import type { Logger } from '../observability/log.ts';
import type { Jid } from '../jid/index.ts';
import type { Session } from './sessions/session.ts';

export interface HookMap {
  'session:authenticated': { session: Session };
  'session:bound': { session: Session };
  'session:closed': { session: Session; reason: string };
  'user:created': { host: string; username: string };
  'user:deleted': { host: string; username: string };
  'user:password-changed': { host: string; username: string };
  'server:started': { hosts: string[] };
  'server:stopping': Record<string, never>;
  /** Stopping: every session is closed (and its 'session:closed' handlers ran); storage is still open. Flush write-behind buffers here. */
  'server:sessions-closed': Record<string, never>;
  /** The presence module: a session sent available presence (initial = its first, RFC 6121 §4.2). */
  'presence:available': { session: Session; initial: boolean };
  /** The presence module: a session became unavailable (explicitly or by disconnecting). */
  'presence:unavailable': { session: Session };
  /** The roster module: a contact was removed from a user's roster (RFC 6121 §2.5); `subscription` is what it had. */
  'roster:item-removed': { owner: Jid; contact: Jid; subscription: 'none' | 'to' | 'from' | 'both'; ask: boolean };
}

export type HookName = keyof HookMap;
export type HookHandler<K extends HookName> = (payload: HookMap[K]) => void | Promise<void>;

export const Priority = { Early: 100, Default: 0, Late: -100 } as const;

interface Entry { fn: (p: never) => void | Promise<void>; priority: number; seq: number }

export class HookBus {
  private readonly handlers = new Map<HookName, Entry[]>();
  private seq = 0;
  constructor(private readonly log: Logger) {}

  /** Register a handler; returns a disposer. Higher priority runs first; ties by registration order. */
  on<K extends HookName>(event: K, fn: HookHandler<K>, priority: number = Priority.Default): () => void {
    const list = this.handlers.get(event) ?? [];
    const entry: Entry = { fn: fn as Entry['fn'], priority, seq: this.seq++ };
    list.push(entry);
    list.sort((a, b) => b.priority - a.priority || a.seq - b.seq);
    this.handlers.set(event, list);
    return () => {
      const l = this.handlers.get(event);
      if (!l) return;
      const i = l.indexOf(entry);
      if (i >= 0) l.splice(i, 1);
    };
  }

  has(event: HookName): boolean {
    return (this.handlers.get(event)?.length ?? 0) > 0;
  }

  /** Run every handler in order, awaiting each; failures are logged, never propagated. */
  async emit<K extends HookName>(event: K, payload: HookMap[K]): Promise<void> {
    const list = this.handlers.get(event);
    if (!list) return;
    for (const e of [...list]) {
      try {
        await (e.fn as HookHandler<K>)(payload);
      } catch (err) {
        this.log.error({ err, event }, 'hook handler failed');
      }
    }
  }
}
