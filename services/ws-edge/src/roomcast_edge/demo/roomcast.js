// roomcast browser client: a plain ES module, no build step.
//
//   import { RoomcastClient } from "./roomcast.js";
//   const client = new RoomcastClient("ws://localhost:8081/ws", { token: () => fetchToken(), rooms: ["1001"] });
//   client.onmessage = (push) => console.log(push.payload);
//   await client.connect();
//   await client.subscribe("order", "event");
//
// It keeps its rooms, subscriptions and the stream position it has seen; after a
// drop it reconnects with exponential backoff and jitter and passes all three in
// the connect URL, so the edge replays what was missed with no gap and no duplicate.

export class RequestFailed extends Error {
  constructor(reply) {
    super(reply.error_message || "request failed");
    this.reply = reply;
  }
}

export class PositionVector {
  constructor() {
    this.entries = new Map();
  }
  mergeStart(text) {
    for (const [p, o] of parseVector(text)) if (!this.entries.has(p)) this.entries.set(p, o);
  }
  advance(position) {
    const [p, o] = position.split(":").map(Number);
    if (Number.isInteger(p) && Number.isInteger(o) && o > (this.entries.get(p) ?? -1)) this.entries.set(p, o);
  }
  get size() {
    return this.entries.size;
  }
  toString() {
    return [...this.entries].sort((a, b) => a[0] - b[0]).map(([p, o]) => `${p}:${o}`).join(",");
  }
}

function parseVector(text) {
  return (text || "")
    .split(",")
    .map((part) => part.trim())
    .filter(Boolean)
    .map((part) => part.split(":").map(Number));
}

export class RoomcastClient {
  constructor(url, { token, rooms = [], subscriptions = [], pingInterval = 15000, backoffMin = 250, backoffMax = 20000 } = {}) {
    this.url = url;
    this.token = token;
    this.rooms = [...new Set(rooms)];
    this.subscriptions = subscriptions.map(([topic, type]) => [topic, type || "*"]);
    this.positions = new PositionVector();
    this.pingInterval = pingInterval;
    this.backoff = [backoffMin, backoffMax];
    this.pending = new Map();
    this.nextId = 1;
    this.closed = false;
    this.attempt = 0;
    this.ws = null;
    this.lastConnected = null;
    // Callbacks the application may set.
    this.onmessage = () => {};
    this.onconnected = () => {};
    this.ondisconnected = () => {};
  }

  async tokenValue() {
    return typeof this.token === "function" ? await this.token() : this.token;
  }

  connectUrl(token) {
    const params = new URLSearchParams({ token });
    if (this.rooms.length) params.set("roomIds", this.rooms.join(","));
    if (this.subscriptions.length) params.set("topics", this.subscriptions.map(([t, k]) => `${t}:${k}`).join(","));
    if (this.positions.size) params.set("since", this.positions.toString());
    return `${this.url}?${params}`;
  }

  // Resolves with the `connected` message of the first connection.
  connect() {
    this.closed = false;
    return new Promise((resolve, reject) => this.open(resolve, reject));
  }

  async open(resolve, reject) {
    let token;
    try {
      token = await this.tokenValue();
    } catch (error) {
      if (reject) return reject(error);
      return this.scheduleReconnect();
    }
    const ws = new WebSocket(this.connectUrl(token));
    let greeted = false;
    ws.onmessage = (event) => {
      const data = JSON.parse(event.data);
      if (!greeted) {
        greeted = true;
        if (data.action !== "connected") return ws.close();
        this.ws = ws;
        this.attempt = 0;
        this.positions.mergeStart(data.position);
        this.lastConnected = data;
        this.startPinging();
        this.onconnected(data);
        if (resolve) resolve(data);
        resolve = reject = null;
        return;
      }
      this.dispatch(data);
    };
    ws.onclose = (event) => {
      this.stopPinging();
      for (const { fail } of this.pending.values()) fail(new Error("connection lost"));
      this.pending.clear();
      if (this.ws === ws) this.ws = null;
      this.ondisconnected(event);
      if (reject && !greeted) {
        reject(new Error(`connection refused (close code ${event.code})`));
        return;
      }
      if (!this.closed) this.scheduleReconnect();
    };
  }

  scheduleReconnect() {
    const [low, high] = this.backoff;
    const delay = Math.min(high, low * 2 ** this.attempt);
    this.attempt += 1;
    const jittered = delay / 2 + Math.random() * (delay / 2);
    setTimeout(() => {
      if (!this.closed) this.open(null, null);
    }, jittered);
  }

  dispatch(data) {
    if (data.request_id !== undefined && data.action !== undefined && data.meta === undefined) {
      const waiter = this.pending.get(String(data.request_id));
      if (waiter) {
        this.pending.delete(String(data.request_id));
        if (data.status === "ok") waiter.done(data);
        else waiter.fail(new RequestFailed(data));
      }
      return;
    }
    if (data.meta && data.meta.position) this.positions.advance(data.meta.position);
    this.onmessage(data);
  }

  request(action, params) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return Promise.reject(new Error("not connected"));
    const requestId = `r${this.nextId++}`;
    const body = { request_id: requestId, timestamp: Date.now(), action };
    if (params) body.params = params;
    return new Promise((done, fail) => {
      this.pending.set(requestId, { done, fail });
      this.ws.send(JSON.stringify(body));
    });
  }

  async subscribe(topic, type = "*") {
    const reply = await this.request("subscribe", { topic, type });
    if (!this.subscriptions.some(([t, k]) => t === topic && k === type)) this.subscriptions.push([topic, type]);
    return reply;
  }

  async unsubscribe(topic, type = "*") {
    const reply = await this.request("unsubscribe", { topic, type });
    this.subscriptions = this.subscriptions.filter(([t, k]) => !(t === topic && k === type));
    return reply;
  }

  async join(room) {
    const reply = await this.request("join", { room });
    if (!this.rooms.includes(room)) this.rooms.push(room);
    return reply;
  }

  async leave(room) {
    const reply = await this.request("leave", { room });
    this.rooms = this.rooms.filter((r) => r !== room);
    return reply;
  }

  ping() {
    return this.request("ping");
  }

  startPinging() {
    this.stopPinging();
    this.pinger = setInterval(() => this.ping().catch(() => {}), this.pingInterval);
  }

  stopPinging() {
    if (this.pinger) clearInterval(this.pinger);
    this.pinger = null;
  }

  close() {
    this.closed = true;
    this.stopPinging();
    if (this.ws) this.ws.close(1000, "client closed");
  }
}
