/**
 * The SSE transport, for networks where WebSockets fail: a `GET /sse` event stream
 * read through `fetch` (so it runs in Node too, and carries no cookie), and each
 * request as `POST /v1/connections/{id}/requests` with the connection's token.
 */

import type { Reply, RequestFrame } from "./protocol.js";
import { SseParser, type SseEvent } from "./sse-parser.js";
import { ABNORMAL_CLOSE, CLIENT_CLOSE, type Fetch, type Link, type LinkEvents } from "./transport.js";

export interface SseOptions {
  fetch: Fetch;
  /** the edge's base URL, for the request uplink */
  base: string;
  /** the connection's current token (it changes when the client refreshes it) */
  token: () => string;
}

async function errorOf(response: Response): Promise<{ code?: string; message: string }> {
  try {
    const body = (await response.json()) as { error?: { code?: string; message?: string } };
    const code = body.error?.code;
    const message = body.error?.message ?? `HTTP ${response.status}`;
    return code === undefined ? { message } : { code, message };
  } catch {
    return { message: `HTTP ${response.status}` };
  }
}

function failed(frame: RequestFrame, message: string): Reply {
  return {
    request_id: frame.request_id,
    action: frame.action,
    status: "fail",
    error_message: message,
    timestamp: Date.now(),
  };
}

export function openSse(url: string, options: SseOptions, events: LinkEvents): Link {
  const abort = new AbortController();
  let connectionId: string | null = null;
  let ended = false;
  const end = (code: number, reason: string, status?: number, errorCode?: string): void => {
    if (ended) return;
    ended = true;
    abort.abort();
    events.closed({
      code,
      reason,
      ...(status === undefined ? {} : { status }),
      ...(errorCode === undefined ? {} : { errorCode }),
    });
  };

  const onEvent = (event: SseEvent): void => {
    let body: unknown;
    try {
      body = JSON.parse(event.data);
    } catch {
      return;
    }
    if (event.event === "close") {
      const close = body as { code?: unknown; reason?: unknown };
      const code = typeof close.code === "number" ? close.code : ABNORMAL_CLOSE;
      end(code, typeof close.reason === "string" ? close.reason : "");
      return;
    }
    if (event.event === "connected") {
      const id = (body as { connection_id?: unknown }).connection_id;
      if (typeof id === "string") connectionId = id;
    }
    if (event.event === "connected" || event.event === "message") events.frame(body);
  };

  const read = async (): Promise<void> => {
    const response = await options.fetch(url, {
      headers: { Accept: "text/event-stream" },
      signal: abort.signal,
    });
    if (!response.ok || !response.body) {
      const { code, message } = await errorOf(response);
      end(ABNORMAL_CLOSE, message, response.status, code);
      return;
    }
    const parser = new SseParser(onEvent, () => events.alive());
    const decoder = new TextDecoder();
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done || ended) break;
      events.alive();
      parser.feed(decoder.decode(value, { stream: true }));
    }
    end(ABNORMAL_CLOSE, "stream ended");
  };
  read().catch((error: unknown) => end(ABNORMAL_CLOSE, String(error)));

  const post = async (frame: RequestFrame): Promise<void> => {
    if (connectionId === null) throw new Error("not connected yet");
    const target = `${options.base}/v1/connections/${encodeURIComponent(connectionId)}/requests`;
    const response = await options.fetch(target, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${options.token()}` },
      body: JSON.stringify(frame),
    });
    let body: unknown = null;
    try {
      body = await response.json();
    } catch {
      // an answer without JSON is reported below as a failed request
    }
    const reply = body as Partial<Reply> | null;
    if (reply && typeof reply.status === "string" && reply.request_id === frame.request_id) {
      events.frame(reply);
    } else {
      const error = (body as { error?: { message?: string } } | null)?.error?.message;
      events.frame(failed(frame, error ?? `HTTP ${response.status}`));
    }
  };

  return {
    send(frame: RequestFrame): void {
      post(frame).catch((error: unknown) => {
        if (!ended) events.frame(failed(frame, String(error)));
      });
    },
    close(): void {
      end(CLIENT_CLOSE, "client closed");
    },
  };
}
