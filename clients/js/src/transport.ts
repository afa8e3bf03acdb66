/**
 * What the client needs from a transport, whichever it is: a link that delivers the
 * server's JSON, sends requests, and reports its end exactly once.
 */

import type { RequestFrame } from "./protocol.js";

export type TransportName = "websocket" | "sse";

/** How a link ended. `status` (and `errorCode`) when an HTTP refusal is known. */
export interface LinkEnd {
  code: number;
  reason: string;
  status?: number;
  errorCode?: string;
}

export interface LinkEvents {
  /** A JSON value from the server: the `connected` message, a push, a reply. */
  frame(body: unknown): void;
  /** Any sign of life, including an SSE comment line. */
  alive(): void;
  /** The link is gone; called once, and nothing is called after it. */
  closed(end: LinkEnd): void;
}

export interface Link {
  send(frame: RequestFrame): void;
  close(): void;
}

/** A WebSocket class: the browser's, Node 22's, or the `ws` package's. */
export type WebSocketConstructor = new (url: string) => object;

/** `fetch` as Node 18+ and browsers have it. */
export type Fetch = typeof globalThis.fetch;

/** Close code the client uses for links it ends itself. */
export const CLIENT_CLOSE = 1000;
/** Close code for a link that ended without a close frame or event. */
export const ABNORMAL_CLOSE = 1006;
