/** The WebSocket transport: one socket to `/ws`, JSON text frames both ways. */

import type { RequestFrame } from "./protocol.js";
import {
  ABNORMAL_CLOSE,
  CLIENT_CLOSE,
  type Link,
  type LinkEvents,
  type WebSocketConstructor,
} from "./transport.js";

// The members of a WebSocket this transport uses; the browser's, Node's and `ws` all have them.
interface Socket {
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code?: number; reason?: string }) => void) | null;
  onerror: ((event: { message?: unknown }) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

const OPEN = 1;

function text(data: unknown): string {
  if (typeof data === "string") return data;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
    return new TextDecoder().decode(data);
  }
  return String(data);
}

/** The HTTP status of a refused upgrade, when the implementation tells it (`ws` does). */
function refusedStatus(message: unknown): number | undefined {
  const match = typeof message === "string" ? /server response: (\d{3})/.exec(message) : null;
  return match ? Number(match[1]) : undefined;
}

export function openWebSocket(
  Impl: WebSocketConstructor,
  url: string,
  events: LinkEvents,
): Link {
  const socket = new Impl(url) as Socket;
  let status: number | undefined;
  let ended = false;
  const end = (code: number, reason: string): void => {
    if (ended) return;
    ended = true;
    socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
    events.closed(status === undefined ? { code, reason } : { code, reason, status });
  };
  socket.onopen = () => events.alive();
  socket.onmessage = (event) => {
    let body: unknown;
    try {
      body = JSON.parse(text(event.data));
    } catch {
      return; // not ours to understand; the server only sends JSON
    }
    events.alive();
    events.frame(body);
  };
  socket.onerror = (event) => {
    status ??= refusedStatus(event.message);
  };
  socket.onclose = (event) => end(event.code ?? ABNORMAL_CLOSE, event.reason ?? "");
  return {
    send(frame: RequestFrame): void {
      if (socket.readyState === OPEN) socket.send(JSON.stringify(frame));
    },
    close(): void {
      try {
        socket.close(CLIENT_CLOSE, "client closed");
      } catch {
        // closing a socket that is still connecting throws in some implementations
      }
      end(CLIENT_CLOSE, "client closed");
    },
  };
}
