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
//
// `token` may be a string or a provider: a function returning a fresh token (or a
// promise of one). With a provider the client keeps the token fresh: it sends
// `refresh` on the open socket ahead of expiry (at a random 70-85 % of the lifetime
// the edge reports), and after a 4001 close it fetches a new token and reconnects at
// once with `since`. A browser cannot read a refused upgrade's 401, so every
// reconnect asks the provider for a token. After a terminal close (1008, 4003, 1009, 1002,
// 1007) it stops and calls `onterminal`: the same token or input cannot succeed.

// After these close codes reconnecting cannot help.
export const TERMINAL_CLOSE_CODES = new Set([1008, 4003, 1009, 1002, 1007]);
export const CLOSE_TOKEN_EXPIRED = 4001;
const REFRESH_WINDOW = [0.7, 0.85];
const REFRESH_RETRY_MAX = 5000;

// Milliseconds before refreshing a token that expires in `expiresIn` seconds.
export function refreshDelay(expiresIn, random = Math.random) {
  const [low, high] = REFRESH_WINDOW;
  return Math.max(0, expiresIn) * 1000 * (low + random() * (high - low));
}

// After a failed refresh: try again while some of the lifetime (and the grace) is left.
export function refreshRetryDelay(expiresIn) {
  return Math.min(REFRESH_RETRY_MAX, Math.max(500, (expiresIn * 1000) / 4));
}

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
  constructor(url, { token, rooms = [], subscriptions = [], pingInterval = 15000, backoffMin = 250, backoffMax = 20000, refresh = true } = {}) {
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
    // Refreshing needs a provider: a fixed token string cannot be renewed.
    this.refreshing = refresh && typeof token === "function";
    this.refresher = null;
    this.expiresAt = null; // epoch ms at which the connection's token expires
    this.refreshes = 0;
    this.refreshFailures = 0;
    this.closeCodes = [];
    this.terminal = null; // the close event that stopped the client for good
    // Callbacks the application may set.
    this.onmessage = () => {};
    this.onconnected = () => {};
    this.ondisconnected = () => {};
    this.onrefresh = () => {}; // (reply) after each accepted refresh
    this.onterminal = () => {}; // (close event) when the client gives up
  }

  async tokenValue() {
    return typeof this.token === "function" ? await this.token() : this.token;
  }

  // Seconds until the connection's token expires (negative once it has), or null.
  get expiresIn() {
    return this.expiresAt === null ? null : (this.expiresAt - Date.now()) / 1000;
  }

  setExpiry(reply) {
    this.expiresAt = typeof reply.expires_in === "number" ? Date.now() + reply.expires_in * 1000 : null;
  }

  scheduleRefresh(delay) {
    this.stopRefreshing();
    if (!this.refreshing || this.expiresAt === null) return;
    this.refresher = setTimeout(() => {
      this.refresher = null;
      this.refresh().catch(() => {
        this.refreshFailures += 1;
        // The old token holds until its grace ends; then 4001 brings a reconnect.
        if (this.ws) this.scheduleRefresh(refreshRetryDelay(this.expiresIn ?? 0));
      });
    }, delay ?? refreshDelay(this.expiresIn));
  }

  stopRefreshing() {
    if (this.refresher) clearTimeout(this.refresher);
    this.refresher = null;
  }

  // Renew the open connection's token now (from the provider when not given).
  async refresh(token) {
    const fresh = token ?? (await this.tokenValue());
    const reply = await this.request("refresh", { token: fresh });
    this.refreshes += 1;
    this.setExpiry(reply);
    this.forgetRevoked(reply.revoked);
    this.onrefresh(reply);
    this.scheduleRefresh();
    return reply;
  }

  // Drop what the new token no longer allows, so a reconnect does not ask for it.
  forgetRevoked(revoked) {
    if (!Array.isArray(revoked) || !revoked.length) return;
    const gone = new Set(revoked.map(String));
    this.rooms = this.rooms.filter((r) => !gone.has(r));
    this.subscriptions = this.subscriptions.filter(([t, k]) => !gone.has(`${t}:${k}`) && !(k === "*" && gone.has(t)));
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
        this.setExpiry(data);
        this.scheduleRefresh();
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
      if (this.ws === ws) {
        this.stopRefreshing();
        this.ws = null;
      }
      if (greeted) this.closeCodes.push(event.code);
      this.ondisconnected(event);
      if (reject && !greeted) {
        reject(new Error(`connection refused (close code ${event.code})`));
        return;
      }
      if (this.closed) return;
      const expired = event.code === CLOSE_TOKEN_EXPIRED;
      if (TERMINAL_CLOSE_CODES.has(event.code) || (expired && typeof this.token !== "function")) {
        this.closed = true;
        this.terminal = event;
        this.onterminal(event);
        return;
      }
      // The token ran out: a fresh one from the provider fixes that now, no backoff.
      if (expired) this.open(null, null);
      else this.scheduleReconnect();
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
    this.stopRefreshing();
    if (this.ws) this.ws.close(1000, "client closed");
  }
}
