/** Reference-counted leases: StrictMode's mount, unmount, mount leaves one subscription. */

import assert from "node:assert/strict";
import { test } from "node:test";

import type { Roomcast } from "../src/client.js";
import { Leases } from "../src/react/leases.js";
import { waitFor } from "./wait.js";

function fakeClient(state = "connected"): Roomcast {
  return { state, on: () => () => {} } as unknown as Roomcast;
}

test("a release followed at once by an acquire keeps the one open lease", async () => {
  const leases = new Leases(fakeClient());
  let opened = 0;
  let closed = 0;
  const open = () => Promise.resolve(++opened);
  const close = () => void (closed += 1);
  const first = leases.acquire("topic", open, close);
  first.release(); // StrictMode's simulated unmount
  const second = leases.acquire("topic", open, close);
  await second.ready;
  assert.equal(opened, 1);
  second.release();
  await waitFor(() => closed === 1);
  assert.equal(opened, 1);
  const third = leases.acquire("topic", open, close);
  await third.ready;
  assert.equal(opened, 2, "after the linger, a new holder opens again");
  third.release();
  third.release(); // a second release of the same lease counts once
  await waitFor(() => closed === 2);
});

test("two holders share one open; the last one out closes", async () => {
  const leases = new Leases(fakeClient());
  let opened = 0;
  let closed = 0;
  const a = leases.acquire("room", () => Promise.resolve(++opened), () => void (closed += 1));
  const b = leases.acquire("room", () => Promise.resolve(++opened), () => void (closed += 1));
  await Promise.all([a.ready, b.ready]);
  a.release();
  b.release();
  await waitFor(() => closed === 1);
  assert.equal(opened, 1);
});

test("a refused open is not kept: the next holder asks again", async () => {
  const leases = new Leases(fakeClient());
  let tries = 0;
  const open = () => (++tries === 1 ? Promise.reject(new Error("no")) : Promise.resolve());
  await assert.rejects(leases.acquire("t", open, () => {}).ready);
  await leases.acquire("t", open, () => {}).ready;
  assert.equal(tries, 2);
});
