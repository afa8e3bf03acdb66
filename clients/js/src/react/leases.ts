/**
 * Reference-counted subscriptions, rooms and connections, one table per client. The
 * first holder opens, the last one closes a moment after it lets go: React StrictMode
 * mounts, unmounts and mounts again at once, and that must leave one subscription
 * on the server, never two and never a gap.
 */

import type { Roomcast } from "../client.js";

/** How long an unheld lease stays open, so a remount takes it over. */
export const LINGER_MS = 250;

interface Entry {
  holders: number;
  ready: Promise<unknown>;
  closing: ReturnType<typeof setTimeout> | undefined;
}

export interface Lease {
  /** settles like the open call (e.g. the `subscribe` reply) */
  ready: Promise<unknown>;
  release: () => void;
}

export class Leases {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly client: Roomcast) {}

  /** `waitForConnect`: open only once the client has been told to connect. */
  acquire(key: string, open: () => Promise<unknown>, close: () => void, waitForConnect = true): Lease {
    let entry = this.entries.get(key);
    if (entry) {
      clearTimeout(entry.closing);
      entry.closing = undefined;
      entry.holders += 1;
    } else {
      const ready = waitForConnect ? this.started().then(open) : open();
      const created: Entry = { holders: 1, ready, closing: undefined };
      entry = created;
      this.entries.set(key, created);
      // A refused open is not kept: the next holder asks again.
      ready.catch(() => {
        if (this.entries.get(key) === created) this.entries.delete(key);
      });
    }
    const held = entry;
    let released = false;
    return {
      ready: held.ready,
      release: () => {
        if (released) return;
        released = true;
        held.holders -= 1;
        if (held.holders > 0) return;
        held.closing = setTimeout(() => {
          if (this.entries.get(key) !== held || held.holders > 0) return;
          this.entries.delete(key);
          close();
        }, LINGER_MS);
      },
    };
  }

  /** Requests wait for connect(): a child's effect runs before its provider's. */
  private started(): Promise<void> {
    const client = this.client;
    if (client.state !== "disconnected") return Promise.resolve();
    return new Promise((resolve) => {
      const off = client.on("state", ({ state }) => {
        if (state === "disconnected") return;
        off();
        resolve();
      });
    });
  }
}

const tables = new WeakMap<Roomcast, Leases>();

export function leasesOf(client: Roomcast): Leases {
  let table = tables.get(client);
  if (!table) tables.set(client, (table = new Leases(client)));
  return table;
}
