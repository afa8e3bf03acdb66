/** Fakes for unit tests: a clock the test moves, and a WebSocket the test plays the server of. */

import type { Timers } from "../src/timers.js";

/** Lets pending promise callbacks run (awaits inside the client). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

interface Due {
  at: number;
  id: number;
  callback: () => void;
}

export class FakeTimers implements Timers {
  private clock = 1_000_000;
  private nextId = 1;
  private due: Due[] = [];

  now(): number {
    return this.clock;
  }

  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.due.push({ at: this.clock + Math.max(0, ms), id, callback });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.due = this.due.filter((d) => d.id !== handle);
  }

  /** Moves the clock, running each timer that falls due (and what it awaits) in order. */
  async advance(ms: number): Promise<void> {
    const end = this.clock + ms;
    await settle();
    for (;;) {
      const next = this.due.filter((d) => d.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!next) break;
      this.due = this.due.filter((d) => d !== next);
      this.clock = next.at;
      next.callback();
      await settle();
    }
    this.clock = end;
    await settle();
  }

  get pending(): number {
    return this.due.length;
  }
}

export interface Frame {
  request_id: string;
  action: string;
  params?: Record<string, unknown>;
}

export class FakeSocket {
  static all: FakeSocket[] = [];
  readyState = 0;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code?: number; reason?: string }) => void) | null = null;
  onerror: ((event: { message?: unknown }) => void) | null = null;
  readonly sent: Frame[] = [];
  closedByClient = false;

  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }

  static reset(): void {
    FakeSocket.all = [];
  }

  static last(): FakeSocket {
    const socket = FakeSocket.all.at(-1);
    if (!socket) throw new Error("no socket was opened");
    return socket;
  }

  get query(): URLSearchParams {
    return new URL(this.url).searchParams;
  }

  send(data: string): void {
    this.sent.push(JSON.parse(data) as Frame);
  }

  close(): void {
    this.closedByClient = true;
    this.readyState = 3;
  }

  // ---- the server's side ----

  hello(extra: Record<string, unknown> = {}): void {
    this.readyState = 1;
    this.onopen?.({});
    this.receive({
      action: "connected",
      status: "ok",
      connection_id: `c${FakeSocket.all.indexOf(this)}`,
      rooms: this.query.get("roomIds")?.split(",") ?? [],
      position: "0:-1,1:-1",
      timestamp: 0,
      ...extra,
    });
  }

  receive(body: unknown): void {
    this.onmessage?.({ data: JSON.stringify(body) });
  }

  reply(frame: Frame, extra: Record<string, unknown> = {}): void {
    this.receive({
      request_id: frame.request_id,
      action: frame.action,
      status: "ok",
      error_message: "",
      timestamp: 0,
      ...extra,
    });
  }

  push(position: string, extra: Record<string, unknown> = {}): void {
    this.receive({ payload: { n: position }, meta: { message_id: `m-${position}`, position }, ...extra });
  }

  drop(code: number, reason = ""): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  refuse(status: number): void {
    this.onerror?.({ message: `Unexpected server response: ${status}` });
    this.drop(1006);
  }

  requests(action: string): Frame[] {
    return this.sent.filter((f) => f.action === action);
  }
}
