/**
 * What the real-stack scenarios share: the stack's addresses (from the pytest test
 * that started it), tokens from auth, acknowledged publishes, a Toxiproxy switch and
 * a delivery ledger.
 */

import assert from "node:assert/strict";

import WebSocket from "ws";

import { Roomcast, type RoomcastEvents, type RoomcastOptions } from "../src/index.js";
import { waitFor } from "../test/wait.js";

export interface Proxy {
  name: string;
  url: string;
}

export interface StackInfo {
  edge: string;
  auth: string;
  publisher: string;
  toxiproxy: string;
  /** the edge behind a proxy, and a second edge with MAX_REPLAY=5 behind another */
  proxies: { edge: Proxy; small: Proxy };
  /** nginx in front of the edge, passing no WebSocket upgrade on (set by one test) */
  noWebsocketProxy?: string;
}

export function stack(): StackInfo {
  const text = process.env["ROOMCAST_TEST_STACK"];
  if (!text) throw new Error("ROOMCAST_TEST_STACK is set by the pytest test that starts the stack");
  return JSON.parse(text) as StackInfo;
}

export function unique(prefix: string): string {
  return `${prefix}-${Math.random().toString(36).slice(2, 10)}`;
}

export interface TokenRequest {
  device: string;
  rooms?: string[];
  ttl?: number;
}

export async function issueToken(auth: string, request: TokenRequest): Promise<{ token: string; expires_at: number }> {
  const response = await fetch(`${auth}/v1/tokens`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      device_id: request.device,
      user_id: `user-${request.device}`,
      is_login: true,
      ...(request.rooms ? { rooms: request.rooms } : {}),
      ...(request.ttl ? { ttl: request.ttl } : {}),
    }),
  });
  assert.equal(response.status, 201, await response.clone().text());
  return (await response.json()) as { token: string; expires_at: number };
}

/** Publishes to a room and returns the acknowledged message id and position. */
export async function publish(
  publisher: string,
  room: string,
  n: number,
): Promise<{ message_id: string; position: string }> {
  const message_id = unique(`m${n}`);
  const response = await fetch(`${publisher}/v1/messages`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ room, payload: { n }, message_id }),
  });
  assert.equal(response.status, 202, await response.clone().text());
  return (await response.json()) as { message_id: string; position: string };
}

/** Cut every connection through the proxy and refuse new ones (or let them through again). */
export async function setProxy(info: StackInfo, proxy: Proxy, enabled: boolean): Promise<void> {
  const response = await fetch(`${info.toxiproxy}/proxies/${proxy.name}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ enabled }),
  });
  assert.equal(response.status, 200, await response.clone().text());
}

/** A toxic that stops all data both ways while connections stay open. */
export async function silence(info: StackInfo, proxy: Proxy, on: boolean): Promise<void> {
  for (const stream of ["upstream", "downstream"]) {
    const name = `silent_${stream}`;
    const response = on
      ? await fetch(`${info.toxiproxy}/proxies/${proxy.name}/toxics`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ name, type: "timeout", stream, attributes: { timeout: 0 } }),
        })
      : await fetch(`${info.toxiproxy}/proxies/${proxy.name}/toxics/${name}`, { method: "DELETE" });
    assert.ok(response.ok, await response.text());
  }
}

/** Everything a client did, in order, for the assertions of a scenario. */
export class Recorder {
  readonly pushes: string[] = [];
  readonly events: Array<{ event: keyof RoomcastEvents; value: unknown }> = [];

  constructor(readonly client: Roomcast) {
    client.on("push", (push) => this.pushes.push(String(push.meta.message_id)));
    for (const event of ["connected", "disconnected", "error", "continuity_lost", "refreshed", "state"] as const) {
      client.on(event, (value: unknown) => this.events.push({ event, value }));
    }
  }

  count(event: keyof RoomcastEvents): number {
    return this.events.filter((e) => e.event === event).length;
  }

  all<K extends keyof RoomcastEvents>(event: K): Array<RoomcastEvents[K]> {
    return this.events.filter((e) => e.event === event).map((e) => e.value as RoomcastEvents[K]);
  }

  got(id: string): boolean {
    return this.pushes.includes(id);
  }
}

export function client(options: Omit<RoomcastOptions, "websocket" | "transports"> & Partial<RoomcastOptions>): Roomcast {
  return new Roomcast({ websocket: WebSocket, transports: ["websocket"], ...options });
}

/** Nothing lost, nothing twice: every acknowledged id exactly once, nothing else. */
export function assertLedger(sent: readonly string[], received: readonly string[]): void {
  const counts = new Map<string, number>();
  for (const id of received) counts.set(id, (counts.get(id) ?? 0) + 1);
  const missing = sent.filter((id) => !counts.has(id));
  const twice = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
  const unknown = received.filter((id) => !sent.includes(id));
  assert.deepEqual({ missing, twice, unknown }, { missing: [], twice: [], unknown: [] });
  assert.ok(sent.length > 0);
}

const started = Date.now();

/** Waits for a condition and notes in the test's output how long it took. */
export async function step(what: string, condition: () => boolean, timeoutMs: number): Promise<void> {
  const since = Date.now();
  await waitFor(condition, timeoutMs, what);
  console.log(`${((Date.now() - started) / 1000).toFixed(1)} s: ${what} (${Date.now() - since} ms)`);
}

export { waitFor };
