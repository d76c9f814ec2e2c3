// Minimal types for @xmpp/client (it ships none), covering what the tests use.
declare module '@xmpp/client' {
  import type { EventEmitter } from 'node:events';
  export interface Element {
    name: string;
    attrs: Record<string, string>;
    children: (Element | string)[];
    getChild(name: string, ns?: string): Element | undefined;
    getChildren(name: string, ns?: string): Element[];
    getChildText(name: string, ns?: string): string | null;
    text(): string;
    toString(): string;
    is(name: string, ns?: string): boolean;
  }
  export interface Client extends EventEmitter {
    jid: { toString(): string; local: string; domain: string; resource: string } | null;
    start(): Promise<unknown>;
    stop(): Promise<unknown>;
    send(el: Element): Promise<void>;
    iqCaller: { request(el: Element, timeout?: number): Promise<Element> };
    iqCallee: { get(ns: string, name: string, fn: (ctx: unknown) => unknown): void; set(ns: string, name: string, fn: (ctx: unknown) => unknown): void };
  }
  export function client(opts: { service: string; domain?: string; username?: string; password?: string; resource?: string }): Client;
  export function xml(name: string, attrs?: Record<string, string | undefined> | null, ...children: (Element | string)[]): Element;
}
