/** The SSE transport against a fake SSE edge in this process (a real HTTP server). */

import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, beforeEach, describe, test } from "node:test";

import { Roomcast, type RoomcastOptions } from "../src/client.js";
import { SseParser, type SseEvent } from "../src/sse-parser.js";
import { FakeSocket } from "./fakes.js";
import { waitFor, within } from "./wait.js";

interface Stream {
  query: URLSearchParams;
  response: ServerResponse;
}

interface Posted {
  path: string;
  authorization: string | undefined;
  body: { request_id: string; action: string; params?: Record<string, unknown> };
}

/** A fake edge: /sse streams the test writes to, and the request uplink. */
class FakeSseEdge {
  readonly streams: Stream[] = [];
  readonly posted: Posted[] = [];
  refuse: { status: number; code: string } | null = null;
  answer: (posted: Posted) => Record<string, unknown> = () => ({});
  private server: Server | null = null;

  async start(): Promise<string> {
    this.server = createServer((request, response) => void this.handle(request, response));
    await new Promise<void>((resolve) => this.server?.listen(0, "127.0.0.1", resolve));
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  async stop(): Promise<void> {
    for (const stream of this.streams) stream.response.destroy();
    this.server?.closeAllConnections();
    await new Promise((resolve) => this.server?.close(resolve));
  }

  /** The next stream a client opens. */
  async next(): Promise<Stream> {
    const count = this.streams.length;
    await waitFor(() => this.streams.length > count, 10_000, "a new stream");
    return this.last();
  }

  last(): Stream {
    const stream = this.streams.at(-1);
    if (!stream) throw new Error("no stream opened");
    return stream;
  }

  hello(stream: Stream, extra: Record<string, unknown> = {}): void {
    const hello = {
      action: "connected",
      status: "ok",
      connection_id: `sse${this.streams.indexOf(stream)}`,
      rooms: [],
      position: "0:-1",
      timestamp: 0,
      ...extra,
    };
    stream.response.write(`event: connected\ndata: ${JSON.stringify(hello)}\n\n`);
  }

  push(stream: Stream, position: string): void {
    const push = { topic: "t", payload: { at: position }, meta: { position } };
    // Split across writes like a network would: the parser must join the pieces.
    const text = `id: ${position}\ndata: ${JSON.stringify(push)}\r\n\r\n`;
    stream.response.write(text.slice(0, 7));
    stream.response.write(text.slice(7));
  }

  close(stream: Stream, code: number, reason: string): void {
    stream.response.end(`event: close\ndata: ${JSON.stringify({ code, reason })}\n\n`);
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? "/", "http://x");
    if (request.method === "GET" && url.pathname === "/sse") {
      if (this.refuse) {
        const { status, code } = this.refuse;
        response.writeHead(status, { "Content-Type": "application/json" });
        response.end(JSON.stringify({ error: { code, message: code } }));
        return;
      }
      response.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" });
      response.write(": hello\n\n");
      this.streams.push({ query: url.searchParams, response });
      return;
    }
    const match = /^\/v1\/connections\/([^/]+)\/requests$/.exec(url.pathname);
    if (request.method === "POST" && match) {
      let text = "";
      for await (const chunk of request) text += String(chunk);
      const posted: Posted = {
        path: url.pathname,
        authorization: request.headers.authorization,
        body: JSON.parse(text) as Posted["body"],
      };
      this.posted.push(posted);
      const reply = {
        request_id: posted.body.request_id,
        action: posted.body.action,
        status: "ok",
        error_message: "",
        timestamp: 0,
        ...this.answer(posted),
      };
      response.writeHead(200, { "Content-Type": "application/json" });
      response.end(JSON.stringify(reply));
      return;
    }
    response.writeHead(404).end();
  }
}

let edge: FakeSseEdge;
let base: string;

before(async () => {
  edge = new FakeSseEdge();
  base = await edge.start();
});

after(async () => {
  await edge.stop();
});

beforeEach(() => {
  FakeSocket.reset();
  edge.refuse = null;
  edge.answer = () => ({});
});

function client(options: Partial<RoomcastOptions> = {}): { client: Roomcast; tokens: string[] } {
  const tokens: string[] = [];
  const made = new Roomcast({
    url: base,
    getToken: () => {
      tokens.push(`s${tokens.length + 1}`);
      return tokens.at(-1) ?? "";
    },
    transports: ["sse"],
    random: () => 0,
    ...options,
  });
  return { client: made, tokens };
}

describe("the SSE parser", () => {
  test("reads events split anywhere, multi-line data, ids, comments and CRLF", () => {
    const events: SseEvent[] = [];
    let comments = 0;
    const parser = new SseParser(
      (e) => events.push(e),
      () => (comments += 1),
    );
    const text = ": ping\r\nevent: connected\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\nid: 0:5\ndata: x\n\n";
    for (const piece of text.match(/[\s\S]{1,3}/g) ?? []) parser.feed(piece);
    assert.deepEqual(events, [
      { event: "connected", data: '{"a":\n1}', id: undefined },
      { event: "message", data: "x", id: "0:5" },
    ]);
    assert.equal(comments, 1);
  });
});

describe("the SSE transport", () => {
  test("connects, receives pushes, sends requests with the bearer token", async () => {
    const { client: c } = client({ rooms: ["1001"] });
    const pushes: unknown[] = [];
    c.on("push", (p) => pushes.push(p));
    const done = c.connect();
    const stream = await edge.next();
    assert.equal(stream.query.get("token"), "s1");
    assert.equal(stream.query.get("roomIds"), "1001");
    edge.hello(stream, { rooms: ["1001"] });
    const hello = await done;
    assert.equal(hello.connection_id, "sse0");
    assert.equal(c.transport, "sse");
    edge.push(stream, "0:3");
    await waitFor(() => pushes.length === 1);
    assert.equal(c.position, "0:3");

    const reply = await c.subscribe("order", "event");
    assert.equal(reply.status, "ok");
    const posted = edge.posted.at(-1);
    assert.ok(posted);
    assert.equal(posted.path, "/v1/connections/sse0/requests");
    assert.equal(posted.authorization, "Bearer s1");
    assert.deepEqual(posted.body.params, { topic: "order", type: "event" });

    edge.answer = () => ({ status: "fail", error_message: "topic not allowed" });
    await assert.rejects(c.subscribe("secret"), /topic not allowed/);
    c.disconnect();
  });

  test("the uplink uses the refreshed token once a refresh is accepted", async () => {
    const { client: c, tokens } = client();
    edge.answer = (p) => (p.body.action === "refresh" ? { expires_in: 100 } : {});
    const refreshed = new Promise((resolve) => c.on("refreshed", resolve));
    const done = c.connect();
    edge.hello(await edge.next(), { expires_in: 0.2 });
    await done;
    await within(refreshed);
    const refresh = edge.posted.find((p) => p.body.action === "refresh");
    assert.ok(refresh);
    assert.equal(refresh.authorization, "Bearer s1");
    assert.deepEqual(refresh.body.params, { token: "s2" });
    await c.join("7");
    assert.equal(edge.posted.at(-1)?.authorization, "Bearer s2");
    assert.equal(tokens.length, 2);
    c.disconnect();
  });

  test("event: close 4001 brings a new token and a resume with since", async () => {
    const { client: c } = client();
    const done = c.connect();
    const first = await edge.next();
    edge.hello(first);
    await done;
    edge.push(first, "0:8");
    await waitFor(() => c.position === "0:8");
    const count = edge.streams.length;
    const disconnected = new Promise((resolve) => c.on("disconnected", resolve));
    edge.close(first, 4001, "token expired");
    assert.deepEqual(await within(disconnected), { code: 4001, reason: "token expired", reconnecting: true });
    await waitFor(() => edge.streams.length === count + 1);
    assert.equal(edge.last().query.get("token"), "s2");
    assert.equal(edge.last().query.get("since"), "0:8");
    c.disconnect();
  });

  test("a refused stream (401 token_expired) is retried with a new token", async () => {
    const { client: c, tokens } = client();
    const errors: string[] = [];
    c.on("error", (e) => errors.push(e.message));
    const done = c.connect();
    edge.hello(await edge.next(), { expires_in: 1000 });
    await done;
    edge.refuse = { status: 401, code: "token_expired" };
    const count = edge.streams.length;
    edge.close(edge.last(), 1012, "service restart");
    await waitFor(() => errors.some((e) => e.includes("token_expired")));
    edge.refuse = null;
    await waitFor(() => edge.streams.length === count + 1);
    assert.ok(tokens.length >= 2, "a fresh token after the refusal");
    assert.equal(edge.last().query.get("token"), tokens.at(-1));
    c.disconnect();
  });
});

describe("falling back from WebSocket to SSE", () => {
  test("a refused WebSocket goes to SSE at once, and SSE is remembered", async () => {
    const { client: c } = client({ transports: ["websocket", "sse"], websocket: FakeSocket });
    const done = c.connect();
    await waitFor(() => FakeSocket.all.length === 1);
    const streams = edge.streams.length;
    FakeSocket.last().refuse(503);
    await waitFor(() => edge.streams.length === streams + 1);
    edge.hello(edge.last());
    await done;
    assert.equal(c.transport, "sse");
    edge.close(edge.last(), 1012, "service restart");
    await waitFor(() => edge.streams.length === streams + 2);
    assert.equal(FakeSocket.all.length, 1, "the working transport is tried first");
    c.disconnect();
  });

  test("a WebSocket that opens but stays silent falls back after the handshake watchdog", async () => {
    const { client: c } = client({
      transports: ["websocket", "sse"],
      websocket: FakeSocket,
      connectTimeoutMs: 150,
    });
    const done = c.connect();
    await waitFor(() => FakeSocket.all.length === 1);
    const streams = edge.streams.length;
    FakeSocket.last().readyState = 1; // open, and then nothing
    await waitFor(() => edge.streams.length === streams + 1);
    assert.ok(FakeSocket.last().closedByClient);
    edge.hello(edge.last());
    await done;
    assert.equal(c.transport, "sse");
    c.disconnect();
  });
});
