/**
 * @roomcast/client against real auth, publisher and edges, some behind Toxiproxy. Run
 * by tests/e2e/test_js_client.py, which starts the stack and names one test at a time.
 */

import assert from "node:assert/strict";
import { test } from "node:test";

import { UnauthorizedError } from "../src/index.js";
import {
  assertLedger,
  client,
  issueToken,
  publish,
  Recorder,
  setProxy,
  silence,
  stack,
  unique,
  step,
  waitFor,
} from "./support.js";

const WAIT = 60_000; // bound on each step on a busy machine
const TTL = 4; // seconds a short-lived token lives (the edge's grace is 1 s)

test("reconnects through a Toxiproxy cut and a silent network with nothing lost or twice", async () => {
  const info = stack();
  const room = unique("cut");
  const device = unique("dev");
  const c = client({
    url: info.proxies.edge.url,
    getToken: async () => (await issueToken(info.auth, { device })).token,
    rooms: [room],
    pingIntervalMs: 500,
    pongTimeoutMs: 500,
    connectTimeoutMs: 2_000,
  });
  const seen = new Recorder(c);
  const sent: string[] = [];
  let n = 0;
  const send = async (count: number) => {
    for (let i = 0; i < count; i++) sent.push((await publish(info.publisher, room, ++n)).message_id);
  };
  try {
    await c.connect();
    await send(5);
    await step("the first messages", () => sent.every((id) => seen.got(id)), WAIT);

    // A cut: the proxy closes the sockets and refuses new ones for a while.
    await setProxy(info, info.proxies.edge, false);
    await step("the client to notice the cut", () => c.state === "reconnecting", WAIT);
    await send(3);
    await setProxy(info, info.proxies.edge, true);
    await step("a reconnect after the cut", () => seen.count("connected") === 2, WAIT);
    await send(3);
    await step("the gap and the new messages", () => sent.every((id) => seen.got(id)), WAIT);

    // A silent network: the socket stays open and nothing moves; the watchdog ends it.
    await silence(info, info.proxies.edge, true);
    await step("the watchdog to drop the silent socket", () => c.state === "reconnecting", WAIT);
    await send(3);
    await silence(info, info.proxies.edge, false);
    await step("a reconnect after the silence", () => seen.count("connected") === 3, WAIT);
    await send(2);
    await step("everything", () => sent.every((id) => seen.got(id)), WAIT);
  } finally {
    c.disconnect();
    await setProxy(info, info.proxies.edge, true);
  }
  assertLedger(sent, seen.pushes);
  const resumes = seen.all("connected").slice(1);
  assert.deepEqual(
    resumes.map((h) => h.recovered),
    [true, true],
  );
  assert.equal(seen.count("continuity_lost"), 0);
  const lost = seen.all("disconnected").filter((d) => d.reason !== "client closed");
  assert.ok(lost.every((d) => d.reconnecting), JSON.stringify(lost));
  assert.ok(lost.some((d) => d.reason === "no sign of life"), JSON.stringify(lost));
});

test("refreshes its token across three lifetimes on one connection", async () => {
  const info = stack();
  const room = unique("life");
  const device = unique("dev");
  let tokens = 0;
  const c = client({
    url: info.edge,
    getToken: async () => {
      tokens += 1;
      return (await issueToken(info.auth, { device, rooms: [room], ttl: TTL })).token;
    },
    rooms: [room],
  });
  const seen = new Recorder(c);
  const sent: string[] = [];
  try {
    const hello = await c.connect();
    assert.ok(hello.expires_in !== undefined && hello.expires_in <= TTL);
    let n = 0;
    const deadline = Date.now() + WAIT;
    while (seen.count("refreshed") < 3) {
      assert.ok(Date.now() < deadline, "three refreshes in time");
      sent.push((await publish(info.publisher, room, ++n)).message_id);
    }
    sent.push((await publish(info.publisher, room, ++n)).message_id);
    await step("every message", () => sent.every((id) => seen.got(id)), WAIT);
  } finally {
    c.disconnect();
  }
  assertLedger(sent, seen.pushes);
  assert.equal(seen.count("connected"), 1, "the same connection the whole time");
  assert.equal(seen.count("disconnected"), 1, "only the final disconnect()");
  assert.equal(tokens, 1 + seen.count("refreshed"));
  assert.ok(sent.length > 10);
});

test("after 4001 it gets a new token and resumes with nothing lost", async () => {
  const info = stack();
  const room = unique("expired");
  const device = unique("dev");
  let refreshRefused = 0;
  let expired = false;
  const c = client({
    url: info.edge,
    getToken: async () => {
      // Refreshes fail (a flaky token service) until the edge closes with 4001.
      if (c.state === "connected" && !expired) {
        refreshRefused += 1;
        throw new Error("token service unavailable");
      }
      return (await issueToken(info.auth, { device, rooms: [room], ttl: TTL })).token;
    },
    rooms: [room],
  });
  const seen = new Recorder(c);
  c.on("disconnected", (d) => (expired ||= d.code === 4001));
  const sent: string[] = [];
  try {
    await c.connect();
    let n = 0;
    const deadline = Date.now() + WAIT;
    while (seen.count("connected") < 2) {
      assert.ok(Date.now() < deadline, "a 4001 and a reconnect in time");
      sent.push((await publish(info.publisher, room, ++n)).message_id);
    }
    sent.push((await publish(info.publisher, room, ++n)).message_id);
    await step("every message", () => sent.every((id) => seen.got(id)), WAIT);
  } finally {
    c.disconnect();
  }
  assertLedger(sent, seen.pushes);
  assert.ok(refreshRefused >= 1);
  const [first] = seen.all("disconnected");
  assert.deepEqual(first, { code: 4001, reason: "token expired", reconnecting: true });
  assert.equal(seen.all("connected")[1]?.recovered, true);
});

test("a token already expired at connect (401 token_expired) is replaced at once", async () => {
  const info = stack();
  const device = unique("dev");
  const stale = await issueToken(info.auth, { device, ttl: 1 });
  await waitFor(() => Date.now() > stale.expires_at * 1000 + 1000, 10_000, "the token to expire");
  const handed: string[] = [];
  const c = client({
    url: info.edge,
    getToken: async () => {
      const token = handed.length === 0 ? stale.token : (await issueToken(info.auth, { device })).token;
      handed.push(token);
      return token;
    },
  });
  const seen = new Recorder(c);
  try {
    await c.connect();
  } finally {
    c.disconnect();
  }
  assert.equal(handed.length, 2);
  assert.equal(seen.count("connected"), 1);
  const errors = seen.all("error").map((e) => e.message);
  assert.ok(errors.some((m) => m.includes("HTTP 401")), JSON.stringify(errors));
});

test("stops for good when getToken throws UnauthorizedError", async () => {
  const info = stack();
  const device = unique("dev");
  let calls = 0;
  const c = client({
    url: info.edge,
    getToken: async () => {
      calls += 1;
      if (calls > 1) throw new UnauthorizedError("signed out");
      return (await issueToken(info.auth, { device, ttl: TTL })).token;
    },
  });
  const seen = new Recorder(c);
  await c.connect();
  // The refresh before expiry asks for a token and hears "never": the client stops.
  await step("the client to stop", () => c.state === "disconnected", WAIT);
  const stoppedAt = Date.now();
  // Past the token's end and the edge's grace and check: no retry came meanwhile.
  await waitFor(() => Date.now() > stoppedAt + 3_000, 10_000, "time past the token's grace");
  assert.equal(calls, 2);
  assert.equal(c.state, "disconnected");
  assert.ok(seen.all("error").some((e) => e instanceof UnauthorizedError));
  assert.equal(seen.count("connected"), 1);
});

test("continuity_lost when the gap is beyond what the edge replays", async () => {
  const info = stack();
  const room = unique("lost");
  const device = unique("dev");
  const c = client({
    url: info.proxies.small.url,
    getToken: async () => (await issueToken(info.auth, { device })).token,
    rooms: [room],
  });
  const seen = new Recorder(c);
  const late: string[] = [];
  try {
    await c.connect();
    const first = await publish(info.publisher, room, 0);
    await step("the first message", () => seen.got(first.message_id), WAIT);
    await setProxy(info, info.proxies.small, false);
    await step("the cut", () => c.state === "reconnecting", WAIT);
    for (let n = 1; n <= 12; n++) await publish(info.publisher, room, n); // MAX_REPLAY is 5
    await setProxy(info, info.proxies.small, true);
    await step("continuity_lost", () => seen.count("continuity_lost") === 1, WAIT);
    for (let n = 13; n <= 15; n++) late.push((await publish(info.publisher, room, n)).message_id);
    await step("live messages after the loss", () => late.every((id) => seen.got(id)), WAIT);
  } finally {
    c.disconnect();
    await setProxy(info, info.proxies.small, true);
  }
  const [lost] = seen.all("continuity_lost");
  assert.ok(lost);
  assert.equal(lost.connected.recovered, false);
  assert.match(lost.since, /^\d+:-?\d+(,\d+:-?\d+)*$/);
  assert.equal(seen.count("connected"), 2);
  // Live again from the new position: each later message once.
  assert.deepEqual(
    late.map((id) => seen.pushes.filter((p) => p === id).length),
    [1, 1, 1],
  );
});

test("history pages and presence answer from the edge", async () => {
  const info = stack();
  const room = unique("hist");
  const device = unique("dev");
  const c = client({
    url: info.edge,
    getToken: async () => (await issueToken(info.auth, { device })).token,
    rooms: [room],
  });
  const seen = new Recorder(c);
  try {
    await c.connect();
    const sent: string[] = [];
    for (let n = 1; n <= 3; n++) sent.push((await publish(info.publisher, room, n)).message_id);
    // Once pushed, the edge has read them: its history holds them too.
    await step("the pushes", () => sent.every((id) => seen.got(id)), WAIT);
    const page = await c.history({ room, limit: 100 });
    assert.deepEqual(
      page.messages.map((m) => m.meta.message_id),
      sent,
    );
    assert.equal(page.complete, true);
    const reply = await c.presence(room);
    const presence = reply["presence"] as { room: string; connections: number };
    assert.deepEqual([presence.room, presence.connections], [room, 1]);
    await assert.rejects(c.history({ room, limit: 5000 }), /limit/);
  } finally {
    c.disconnect();
  }
});

test("over SSE: connects, receives, requests through the uplink", async () => {
  const info = stack();
  const room = unique("sse");
  const device = unique("dev");
  const c = client({
    url: info.edge,
    transports: ["sse"],
    getToken: async () => (await issueToken(info.auth, { device })).token,
  });
  const seen = new Recorder(c);
  try {
    const hello = await c.connect();
    assert.equal(c.transport, "sse");
    assert.ok(hello.connection_id);
    const joined = await c.join(room);
    assert.equal(joined.status, "ok");
    const sent = [(await publish(info.publisher, room, 1)).message_id];
    await step("a push over SSE", () => sent.every((id) => seen.got(id)), WAIT);
    assertLedger(sent, seen.pushes);
  } finally {
    c.disconnect();
  }
});

test("behind a proxy that refuses WebSockets it falls back to SSE and delivers everything", async () => {
  const info = stack();
  const url = info.noWebsocketProxy;
  if (!url) throw new Error("noWebsocketProxy is set by the pytest test that starts nginx");
  const room = unique("nows");
  const device = unique("dev");
  const c = client({
    url,
    transports: ["websocket", "sse"], // the default order of a client out of the box
    getToken: async () => (await issueToken(info.auth, { device })).token,
    rooms: [room],
  });
  const seen = new Recorder(c);
  try {
    await c.connect();
    assert.equal(c.transport, "sse", "the WebSocket upgrade was refused: SSE took over");
    const sent: string[] = [];
    for (let i = 0; i < 20; i += 1) sent.push((await publish(info.publisher, room, i)).message_id);
    await step("every push through the buffering proxy", () => sent.every((id) => seen.got(id)), WAIT);
    assertLedger(sent, seen.pushes);
    const presence = await c.presence(room);
    assert.equal(presence.status, "ok", "a request goes up through the proxy too");
  } finally {
    c.disconnect();
  }
});
