/**
 * Requests and their replies. A request made while the client is between connections
 * waits in a queue; one in flight when a connection ends goes back to the queue, so
 * `subscribe` or `join` made at any moment reaches the next connection. Each one
 * settles exactly once: with the reply, or with an error after `timeoutMs`.
 */

import { ConnectionError, RequestError } from "./errors.js";
import type { Action, Reply, RequestFrame } from "./protocol.js";
import type { Timers } from "./timers.js";

interface Pending {
  frame: RequestFrame;
  resolve: (reply: Reply) => void;
  reject: (error: Error) => void;
  timer: unknown;
}

// Worth sending again on the next connection; a ping or a refresh is not.
const RESENT: ReadonlySet<Action> = new Set(["subscribe", "unsubscribe", "join", "leave", "presence"]);

export class Requests {
  private nextId = 1;
  private readonly waiting: Pending[] = [];
  private readonly inFlight = new Map<string, Pending>();

  constructor(
    private readonly timers: Timers,
    private readonly timeoutMs: number,
  ) {}

  /** A new request; `send` is called now when connected, else with the next connection. */
  make(
    action: Action,
    params: Record<string, unknown> | undefined,
    send: ((frame: RequestFrame) => void) | null,
  ): Promise<Reply> {
    const frame: RequestFrame = {
      request_id: `r${this.nextId++}`,
      timestamp: this.timers.now(),
      action,
      ...(params ? { params } : {}),
    };
    return new Promise<Reply>((resolve, reject) => {
      const pending: Pending = { frame, resolve, reject, timer: undefined };
      pending.timer = this.timers.setTimeout(() => {
        this.forget(pending);
        reject(new ConnectionError(`no reply to ${action} in ${this.timeoutMs / 1000} s`));
      }, this.timeoutMs);
      if (send) this.sendNow(pending, send);
      else this.waiting.push(pending);
    });
  }

  /** A connection is up: send what waited for one. */
  flush(send: (frame: RequestFrame) => void): void {
    for (const pending of this.waiting.splice(0)) this.sendNow(pending, send);
  }

  /** A connection ended: what it left unanswered waits for the next one (or fails). */
  requeue(): void {
    for (const pending of this.inFlight.values()) {
      if (RESENT.has(pending.frame.action)) this.waiting.push(pending);
      else this.settle(pending, new ConnectionError("connection lost"));
    }
    this.inFlight.clear();
  }

  /** The reply to one of ours: resolves it, or rejects it with the server's reason. */
  answer(reply: Reply): void {
    const pending = this.inFlight.get(reply.request_id);
    if (!pending) return;
    this.inFlight.delete(reply.request_id);
    this.settle(pending, reply.status === "ok" ? reply : new RequestError(reply));
  }

  failAll(error: Error): void {
    const all = [...this.waiting.splice(0), ...this.inFlight.values()];
    this.inFlight.clear();
    for (const pending of all) this.settle(pending, error);
  }

  private sendNow(pending: Pending, send: (frame: RequestFrame) => void): void {
    this.inFlight.set(pending.frame.request_id, pending);
    send(pending.frame);
  }

  private forget(pending: Pending): void {
    this.inFlight.delete(pending.frame.request_id);
    const index = this.waiting.indexOf(pending);
    if (index !== -1) this.waiting.splice(index, 1);
  }

  private settle(pending: Pending, outcome: Reply | Error): void {
    this.timers.clearTimeout(pending.timer);
    if (outcome instanceof Error) pending.reject(outcome);
    else pending.resolve(outcome);
  }
}
