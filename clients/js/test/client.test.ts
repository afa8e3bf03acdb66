/** The client's state machine against a fake WebSocket and a fake clock. */

import assert from "node:assert/strict";
import { beforeEach, describe, test } from "node:test";

import { Roomcast, type RoomcastEvents, type RoomcastOptions } from "../src/client.js";
import { ConnectionError, RequestError, UnauthorizedError } from "../src/errors.js";
import { StateMachine } from "../src/machine.js";
import { FakeSocket, FakeTimers, settle } from "./fakes.js";

interface Setup {
  client: Roomcast;
  timers: FakeTimers;
  tokens: string[];
  seen: Array<[keyof RoomcastEvents, unknown]>;
}

function setup(options: Partial<RoomcastOptions> = {}): Setup {
  const timers = new FakeTimers();
  const tokens: string[] = [];
  const client = new Roomcast({
    url: "http://edge.test:8081/",
    getToken: () => {
      const token = `t${tokens.length + 1}`;
      tokens.push(token);
      return token;
    },
    transports: ["websocket"],
    websocket: FakeSocket,
    timers,
    random: () => 0.5,
    ...options,
  });
  const seen: Setup["seen"] = [];
  for (const event of [
    "state",
    "connected",
    "push",
    "disconnected",
    "error",
    "continuity_lost",
    "refreshed",
  ] as const) {
    client.on(event, (value: unknown) => seen.push([event, value]));
  }
  return { client, timers, tokens, seen };
}

function states(seen: Setup["seen"]): string[] {
  return seen
    .filter(([event]) => event === "state")
    .map(([, value]) => (value as { state: string }).state);
}

async function connected(s: Setup, extra: Record<string, unknown> = {}): Promise<FakeSocket> {
  const done = s.client.connect();
  await settle();
  const socket = FakeSocket.last();
  socket.hello(extra);
  await done;
  return socket;
}

beforeEach(() => FakeSocket.reset());

describe("connecting", () => {
  test("connects with the token, rooms and topics and resolves with `connected`", async () => {
    const s = setup({ rooms: ["1001"], topics: ["order:*"] });
    const done = s.client.connect();
    await settle();
    const socket = FakeSocket.last();
    assert.equal(new URL(socket.url).origin, "ws://edge.test:8081");
    assert.equal(new URL(socket.url).pathname, "/ws");
    assert.equal(socket.query.get("token"), "t1");
    assert.equal(socket.query.get("roomIds"), "1001");
    assert.equal(socket.query.get("topics"), "order:*");
    assert.equal(socket.query.get("since"), null);
    socket.hello({ expires_in: 100 });
    const hello = await done;
    assert.equal(hello.connection_id, "c0");
    assert.deepEqual(states(s.seen), ["connecting", "connected"]);
    assert.equal(s.client.connectionId, "c0");
    assert.equal(s.client.position, "0:-1,1:-1");
  });

  test("no WebSocket anywhere is an error event, not a throw at import or construction", async () => {
    const s = setup({ websocket: undefined as never, transports: ["websocket"] });
    const original = (globalThis as { WebSocket?: unknown }).WebSocket;
    delete (globalThis as { WebSocket?: unknown }).WebSocket;
    try {
      void s.client.connect().catch(() => {});
      await settle();
      const errors = s.seen.filter(([e]) => e === "error").map(([, v]) => String(v));
      assert.match(errors.join(" "), /no WebSocket here/);
      assert.equal(s.client.state, "connecting");
    } finally {
      if (original !== undefined) (globalThis as { WebSocket?: unknown }).WebSocket = original;
      s.client.disconnect();
    }
  });
});

describe("close codes", () => {
  for (const code of [4000, 4008, 1012, 1006]) {
    test(`${code}: reconnects after a jittered backoff and resumes with since`, async () => {
      const s = setup();
      const socket = await connected(s);
      socket.push("1:7");
      socket.push("0:3");
      socket.drop(code, "bye");
      await settle();
      assert.equal(s.client.state, "reconnecting");
      assert.equal(FakeSocket.all.length, 1, "no reconnect before the backoff");
      await s.timers.advance(499);
      assert.equal(FakeSocket.all.length, 1, "the backoff is at least 0.5 s");
      await s.timers.advance(600); // random 0.5: 0.5 + 0.5 * (1 - 0.5) s
      const again = FakeSocket.last();
      assert.equal(FakeSocket.all.length, 2);
      assert.equal(again.query.get("since"), "0:3,1:7");
      assert.equal(again.query.get("token"), "t1", "the token still had life: reused");
      again.hello({ recovered: true });
      await settle();
      assert.equal(s.client.state, "connected");
      const disconnected = s.seen.find(([e]) => e === "disconnected")?.[1];
      assert.deepEqual(disconnected, { code, reason: "bye", reconnecting: true });
    });
  }

  test("4001: a new token from getToken and an immediate reconnect with since", async () => {
    const s = setup();
    const socket = await connected(s, { expires_in: 1 });
    socket.push("0:5");
    socket.drop(4001, "token expired");
    await settle();
    const again = FakeSocket.last();
    assert.equal(FakeSocket.all.length, 2, "no backoff after 4001");
    assert.equal(again.query.get("token"), "t2");
    assert.equal(again.query.get("since"), "0:5,1:-1");
  });

  for (const code of [1008, 4003, 1009, 1002, 1007]) {
    test(`${code}: stops until a new connect(), which gets a new token`, async () => {
      const s = setup();
      const socket = await connected(s);
      socket.drop(code, "no");
      await s.timers.advance(120_000);
      assert.equal(FakeSocket.all.length, 1, "never retried by itself");
      assert.equal(s.client.state, "disconnected");
      const disconnected = s.seen.find(([e]) => e === "disconnected")?.[1];
      assert.deepEqual(disconnected, { code, reason: "no", reconnecting: false });
      void s.client.connect();
      await settle();
      assert.equal(FakeSocket.all.length, 2);
      assert.equal(FakeSocket.last().query.get("token"), "t2", "not the same token again");
    });
  }
});

describe("backoff across failed attempts", () => {
  test("each wait is full-jitter within 0.5 s and a ceiling doubling to 20 s", async () => {
    const s = setup({ random: () => 1 });
    const socket = await connected(s);
    socket.drop(1006);
    const ceilings = [1000, 2000, 4000, 8000, 16000, 20000, 20000];
    for (const ceiling of ceilings) {
      const before = FakeSocket.all.length;
      await s.timers.advance(ceiling - 1);
      assert.equal(FakeSocket.all.length, before, `waited less than ${ceiling} ms`);
      await s.timers.advance(1);
      assert.equal(FakeSocket.all.length, before + 1, `retried at ${ceiling} ms`);
      FakeSocket.last().drop(1006); // the handshake fails
      await settle();
    }
    assert.equal(s.client.state, "reconnecting");
  });
});

describe("the ping watchdog", () => {
  test("pings every interval and drops a connection that stops answering", async () => {
    const s = setup({ pingIntervalMs: 1000, pongTimeoutMs: 1000 });
    const socket = await connected(s);
    await s.timers.advance(1000);
    const [ping] = socket.requests("ping");
    assert.ok(ping, "a ping after one interval");
    socket.reply(ping);
    await s.timers.advance(1000);
    assert.equal(socket.requests("ping").length, 2);
    assert.equal(s.client.state, "connected");
    await s.timers.advance(1000); // two intervals without a frame
    assert.ok(socket.closedByClient, "the silent socket was closed");
    assert.equal(s.client.state, "reconnecting");
  });
});

describe("tokens", () => {
  test("refreshes on the open connection before expiry", async () => {
    const s = setup({ random: () => 1 });
    const socket = await connected(s, { expires_in: 10 });
    await s.timers.advance(8_499);
    assert.equal(s.tokens.length, 1);
    await s.timers.advance(1); // 85 % of 10 s
    assert.equal(s.tokens.length, 2);
    const [refresh] = socket.requests("refresh");
    assert.ok(refresh);
    assert.deepEqual(refresh.params, { token: "t2" });
    socket.reply(refresh, { expires_in: 10, revoked: [] });
    await settle();
    const refreshed = s.seen.find(([e]) => e === "refreshed")?.[1];
    assert.deepEqual(refreshed, { expires_in: 10, revoked: [] });
    await s.timers.advance(8_500);
    assert.equal(s.tokens.length, 3, "and again within the new lifetime");
  });

  test("a failed refresh is tried again while the token lasts", async () => {
    const s = setup({ random: () => 0 });
    const socket = await connected(s, { expires_in: 10 });
    await s.timers.advance(7_000);
    const [refresh] = socket.requests("refresh");
    assert.ok(refresh);
    socket.reply(refresh, { status: "fail", error_message: "token refused" });
    await s.timers.advance(750); // a quarter of what is left
    assert.equal(socket.requests("refresh").length, 2);
  });

  test("UnauthorizedError from getToken stops the client for good", async () => {
    let allow = true;
    const s = setup({
      getToken: () => {
        if (!allow) throw new UnauthorizedError("account closed");
        return "t";
      },
    });
    const socket = await connected(s);
    allow = false;
    socket.drop(4001, "token expired");
    await s.timers.advance(60_000);
    assert.equal(s.client.state, "disconnected");
    assert.equal(FakeSocket.all.length, 1);
    const errors = s.seen.filter(([e]) => e === "error").map(([, v]) => v);
    assert.ok(errors.some((e) => e instanceof UnauthorizedError));
  });

  test("UnauthorizedError rejects the first connect()", async () => {
    const s = setup({
      getToken: () => Promise.reject(new UnauthorizedError()),
    });
    await assert.rejects(s.client.connect(), UnauthorizedError);
    assert.equal(s.client.state, "disconnected");
  });

  test("a refused upgrade (401) with a cached token fetches a new one at once", async () => {
    const s = setup();
    const socket = await connected(s);
    socket.drop(1006);
    await s.timers.advance(1000);
    FakeSocket.last().refuse(401);
    await settle();
    assert.equal(FakeSocket.all.length, 3);
    assert.equal(FakeSocket.last().query.get("token"), "t2");
  });

  test("an unexplained failed handshake does not reuse a cached token", async () => {
    const s = setup();
    const socket = await connected(s);
    socket.drop(1006);
    await s.timers.advance(1000);
    FakeSocket.last().drop(1006); // a browser: no status
    await s.timers.advance(2000);
    assert.equal(FakeSocket.last().query.get("token"), "t2");
  });
});

describe("recovery", () => {
  test("continuity_lost when a resume answers recovered: false", async () => {
    const s = setup();
    const socket = await connected(s);
    socket.push("0:4");
    socket.drop(4000);
    await s.timers.advance(1000);
    FakeSocket.last().hello({ recovered: false, position: "0:90,1:12" });
    await settle();
    const lost = s.seen.find(([e]) => e === "continuity_lost")?.[1] as
      | RoomcastEvents["continuity_lost"]
      | undefined;
    assert.equal(lost?.since, "0:4,1:-1");
    assert.equal(s.client.position, "0:90,1:12", "resumes from now on, not the lost gap");
  });

  test("a recovered resume keeps its vector until the replay arrives", async () => {
    const s = setup();
    const socket = await connected(s);
    socket.push("0:4");
    socket.drop(4000);
    await s.timers.advance(1000);
    const again = FakeSocket.last();
    again.hello({ recovered: true, position: "0:90,1:12" });
    await settle();
    assert.equal(s.client.position, "0:4,1:-1");
    again.push("0:5");
    assert.equal(s.client.position, "0:5,1:-1");
    assert.equal(s.seen.filter(([e]) => e === "continuity_lost").length, 0);
  });
});

describe("requests", () => {
  test("resolve with the reply, reject with RequestError on fail", async () => {
    const s = setup();
    const socket = await connected(s);
    const ok = s.client.subscribe("order", "event");
    const bad = s.client.join("secret");
    const [sub] = socket.requests("subscribe");
    const [join] = socket.requests("join");
    assert.ok(sub && join);
    assert.deepEqual(sub.params, { topic: "order", type: "event" });
    socket.reply(sub);
    socket.reply(join, { status: "fail", error_message: "room not allowed" });
    assert.equal((await ok).status, "ok");
    await assert.rejects(bad, (e: unknown) => e instanceof RequestError && e.message === "room not allowed");
    assert.deepEqual(s.client.topics, ["order:event"]);
    assert.deepEqual(s.client.rooms, []);
  });

  test("before connect() they reject at once with a readable error", async () => {
    const s = setup();
    await assert.rejects(s.client.join("1001"), (e: unknown) => {
      return e instanceof ConnectionError && /call connect\(\) first/.test(e.message);
    });
  });

  test("between connections they wait, and an unanswered one is sent again", async () => {
    const s = setup();
    const socket = await connected(s);
    const first = s.client.subscribe("a");
    socket.drop(1006);
    const second = s.client.join("1001");
    await s.timers.advance(1000);
    const again = FakeSocket.last();
    assert.equal(again.query.get("topics"), null, "not granted yet: not in the URL");
    again.hello();
    await settle();
    const [sub] = again.requests("subscribe");
    const [join] = again.requests("join");
    assert.ok(sub && join);
    again.reply(sub);
    again.reply(join);
    await Promise.all([first, second]);
    socket.drop(1006);
  });

  test("a request with no reply is rejected after the timeout", async () => {
    const s = setup({ requestTimeoutMs: 2000 });
    await connected(s);
    const lost = assert.rejects(s.client.presence("1001"), ConnectionError);
    await s.timers.advance(2000);
    await lost;
  });

  test("disconnect() rejects what waits and stops", async () => {
    const s = setup();
    const socket = await connected(s);
    const waiting = s.client.leave("1001");
    s.client.disconnect();
    await assert.rejects(waiting, ConnectionError);
    assert.ok(socket.closedByClient);
    assert.equal(s.client.state, "disconnected");
    await s.timers.advance(60_000);
    assert.equal(FakeSocket.all.length, 1);
  });
});

describe("the state machine", () => {
  test("refuses moves the table does not list", () => {
    const seen: string[] = [];
    const machine = new StateMachine((state) => seen.push(state));
    assert.throws(() => machine.move("connected"), /no move from disconnected to connected/);
    machine.move("connecting");
    machine.move("connected");
    machine.move("reconnecting");
    assert.throws(() => machine.move("connecting"));
    machine.move("disconnected");
    assert.deepEqual(seen, ["connecting", "connected", "reconnecting", "disconnected"]);
  });
});
