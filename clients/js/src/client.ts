/**
 * `Roomcast`: one logical connection to an edge that survives the network. It keeps
 * the rooms, subscriptions and position vector it has, so each new connection resumes
 * with `since`; it acts on each close code as the contract's table says, keeps its
 * token fresh, and tries the next transport when one fails. All state changes go
 * through the state machine; callbacks from a link that is no longer current are
 * ignored (each link carries the `epoch` it was opened in).
 */

import { afterClose } from "./closecodes.js";
import { backoffDelay, refreshDelay } from "./backoff.js";
import { Emitter, type Handler } from "./emitter.js";
import { ConnectionError, UnauthorizedError } from "./errors.js";
import { fetchHistory } from "./history.js";
import { StateMachine, type State } from "./machine.js";
import { PositionVector } from "./positions.js";
import {
  classify,
  connectUrl,
  topicSpec,
  type Action,
  type Connected,
  type HistoryPage,
  type HistoryQuery,
  type PresenceEvent,
  type Push,
  type Reply,
} from "./protocol.js";
import { Requests } from "./requests.js";
import { openSse } from "./sse.js";
import { Alarms, realTimers, type Timers } from "./timers.js";
import {
  ABNORMAL_CLOSE,
  type Fetch,
  type Link,
  type LinkEnd,
  type TransportName,
  type WebSocketConstructor,
} from "./transport.js";
import { openWebSocket } from "./websocket.js";

export interface RoomcastOptions {
  /** the edge's base URL, e.g. `http://127.0.0.1:8081` (`/ws` and `/sse` are derived) */
  url: string;
  /** returns a token; throw `UnauthorizedError` when none will ever come */
  getToken: () => Promise<string> | string;
  /** rooms to be in from the first connection */
  rooms?: readonly string[];
  /** subscriptions from the first connection: `"order:event"`, `"quotes:*"` */
  topics?: readonly string[];
  /** in the order to try them; default `["websocket", "sse"]` */
  transports?: readonly TransportName[];
  /** a WebSocket class when there is no global one (the `ws` package on Node 20) */
  websocket?: WebSocketConstructor;
  fetch?: Fetch;
  /** a ping every this often on a WebSocket (default 10 s) */
  pingIntervalMs?: number;
  /** a connection silent this long after a ping is dead (default 10 s) */
  pongTimeoutMs?: number;
  /** an SSE stream silent this long is dead (default 35 s; the edge writes every 15 s) */
  sseSilenceMs?: number;
  /** a connection attempt without its `connected` message this long has failed (default 10 s) */
  connectTimeoutMs?: number;
  /** a request without a reply this long is rejected (default 15 s) */
  requestTimeoutMs?: number;
  timers?: Timers;
  random?: () => number;
}

export interface DisconnectedEvent {
  code: number;
  reason: string;
  /** true when the client reconnects by itself */
  reconnecting: boolean;
}

export interface RefreshedEvent {
  expires_in: number;
  revoked: string[];
}

export interface RoomcastEvents {
  state: { state: State; previous: State };
  connected: Connected;
  push: Push;
  presence: PresenceEvent;
  disconnected: DisconnectedEvent;
  refreshed: RefreshedEvent;
  error: Error;
  /** a resume was answered `recovered: false`: messages since the last one seen are lost */
  continuity_lost: { connected: Connected; since: string };
}

type Alarm = "retry" | "handshake" | "watchdog" | "refresh";

export class Roomcast {
  private readonly events = new Emitter<RoomcastEvents>();
  private readonly machine = new StateMachine((state, previous) =>
    this.emit("state", { state, previous }),
  );
  private readonly positions = new PositionVector();
  private readonly roomSet: Set<string>;
  private readonly topicSet: Set<string>;
  private readonly transports: readonly TransportName[];
  private readonly timers: Timers;
  private readonly alarms: Alarms<Alarm>;
  private readonly requests: Requests;
  private readonly random: () => number;
  private readonly base: string;

  private epoch = 0;
  private link: Link | null = null;
  private linkTransport = 0; // index into `transports` of the current link
  private linkUp = false; // the current link got its `connected`
  private preferred = 0; // the transport that worked last: tried first
  private round: number[] = []; // transports still to try before backing off
  private failures = 0; // failed attempts since the last `connected`
  private token: string | null = null;
  private tokenFresh = false; // `token` came from getToken for this very attempt
  private tokenExpiresAt: number | null = null;
  private lastAlive = 0;
  private sentSince = "";
  private hello: Connected | null = null;
  private waiters: Array<{ resolve: (c: Connected) => void; reject: (e: Error) => void }> = [];

  constructor(private readonly options: RoomcastOptions) {
    this.base = options.url.replace(/\/+$/, "");
    this.roomSet = new Set(options.rooms ?? []);
    this.topicSet = new Set(options.topics ?? []);
    this.transports = options.transports?.length ? options.transports : ["websocket", "sse"];
    this.timers = options.timers ?? realTimers;
    this.alarms = new Alarms(this.timers);
    this.requests = new Requests(this.timers, options.requestTimeoutMs ?? 15_000);
    this.random = options.random ?? Math.random;
  }

  get state(): State {
    return this.machine.state;
  }

  /** The transport of the current (or last) connection. */
  get transport(): TransportName {
    return this.transports[this.linkTransport] ?? "websocket";
  }

  get connectionId(): string | null {
    return this.linkUp ? (this.hello?.connection_id ?? null) : null;
  }

  /** The position vector a reconnect resumes from. */
  get position(): string {
    return this.positions.toString();
  }

  get rooms(): string[] {
    return [...this.roomSet];
  }

  get topics(): string[] {
    return [...this.topicSet];
  }

  /** When the connection's token expires (epoch ms), when known. */
  get expiresAt(): number | null {
    return this.tokenExpiresAt;
  }

  on<K extends keyof RoomcastEvents>(event: K, handler: Handler<RoomcastEvents[K]>): () => void {
    return this.events.on(event, handler);
  }

  /** Resolves with the next `connected` message (at once when connected). */
  connect(): Promise<Connected> {
    if (this.state === "connected" && this.hello) return Promise.resolve(this.hello);
    const promise = new Promise<Connected>((resolve, reject) =>
      this.waiters.push({ resolve, reject }),
    );
    if (this.state === "disconnected") {
      this.machine.move("connecting");
      this.failures = 0;
      this.startRound(this.preferred);
    }
    return promise;
  }

  disconnect(): void {
    const wasUp = this.linkUp;
    this.stop(new ConnectionError("disconnected"));
    if (wasUp) this.emit("disconnected", { code: 1000, reason: "client closed", reconnecting: false });
  }

  async subscribe(topic: string, type = "*"): Promise<Reply> {
    const reply = await this.request("subscribe", { topic, type });
    this.topicSet.add(topicSpec(topic, type));
    return reply;
  }

  async unsubscribe(topic: string, type = "*"): Promise<Reply> {
    const reply = await this.request("unsubscribe", { topic, type });
    this.topicSet.delete(topicSpec(topic, type));
    return reply;
  }

  async join(room: string): Promise<Reply> {
    const reply = await this.request("join", { room });
    this.roomSet.add(room);
    return reply;
  }

  async leave(room: string): Promise<Reply> {
    const reply = await this.request("leave", { room });
    this.roomSet.delete(room);
    return reply;
  }

  /** The reply carries `presence`: `{room, connections, users, members}`. */
  presence(room: string): Promise<Reply> {
    return this.request("presence", { room });
  }

  /** A page of `GET /v1/history`, authorised by this client's token. */
  async history(query: HistoryQuery): Promise<HistoryPage> {
    const token = this.token ?? (await this.options.getToken());
    return fetchHistory(this.fetchImpl(), this.base, token, query);
  }

  // ---- requests ----

  private request(action: Action, params?: Record<string, unknown>): Promise<Reply> {
    if (this.state === "disconnected") {
      return Promise.reject(new ConnectionError(`cannot ${action}: call connect() first`));
    }
    return this.requests.make(action, params, this.sender());
  }

  private sender(): ((frame: Parameters<Link["send"]>[0]) => void) | null {
    const link = this.link;
    return link && this.linkUp ? (frame) => link.send(frame) : null;
  }

  // ---- connection attempts ----

  /** Try the transports in order from `first`; back off only when all have failed. */
  private startRound(first: number): void {
    const count = this.transports.length;
    this.round = Array.from({ length: count }, (_, i) => (first + i) % count);
    void this.attempt();
  }

  private async attempt(): Promise<void> {
    const epoch = ++this.epoch;
    const index = this.round.shift() ?? this.preferred;
    let token: string;
    try {
      token = await this.connectToken();
    } catch (error) {
      if (epoch !== this.epoch) return;
      if (error instanceof UnauthorizedError) return this.stop(error);
      this.emit("error", asError(error));
      return this.retryLater();
    }
    if (epoch !== this.epoch) return;
    this.linkTransport = index;
    this.linkUp = false;
    this.sentSince = this.positions.toString();
    const name = this.transports[index] ?? "websocket";
    const query = { rooms: this.rooms, topics: this.topics, since: this.sentSince };
    const url = connectUrl(this.base, name === "sse" ? "/sse" : "/ws", token, query);
    const events = {
      frame: (body: unknown) => {
        if (epoch === this.epoch) this.onFrame(body);
      },
      alive: () => {
        if (epoch === this.epoch) this.lastAlive = this.timers.now();
      },
      closed: (end: LinkEnd) => {
        if (epoch === this.epoch) this.onLinkEnd(end);
      },
    };
    try {
      this.link =
        name === "sse"
          ? openSse(url, { fetch: this.fetchImpl(), base: this.base, token: () => this.token ?? token }, events)
          : openWebSocket(this.webSocketImpl(), url, events);
    } catch (error) {
      return this.onLinkEnd({ code: ABNORMAL_CLOSE, reason: String(error) });
    }
    this.alarms.arm("handshake", this.options.connectTimeoutMs ?? 10_000, () => {
      this.dropLink();
      this.onHandshakeFailed({ code: ABNORMAL_CLOSE, reason: `${name}: no answer` });
    });
  }

  /** The cached token while it has life left, else a new one from getToken. */
  private async connectToken(): Promise<string> {
    const expiring =
      this.tokenExpiresAt !== null && this.timers.now() >= this.tokenExpiresAt - 2_000;
    if (this.token !== null && !expiring) {
      this.tokenFresh = false;
      return this.token;
    }
    const token = await this.options.getToken();
    this.token = token;
    this.tokenFresh = true;
    this.tokenExpiresAt = null;
    return token;
  }

  private retryLater(): void {
    const delay = backoffDelay(this.failures++, this.random);
    this.alarms.arm("retry", delay, () => this.startRound(this.preferred));
  }

  private onLinkEnd(end: LinkEnd): void {
    const wasUp = this.linkUp;
    this.link = null;
    this.linkUp = false;
    this.alarms.cancel("handshake");
    this.alarms.cancel("watchdog");
    this.alarms.cancel("refresh");
    this.requests.requeue();
    if (wasUp) this.onLost(end, this.preferred);
    else this.onHandshakeFailed(end);
  }

  private onHandshakeFailed(end: LinkEnd): void {
    const name = this.transports[this.linkTransport] ?? "websocket";
    const why = end.errorCode ?? (end.status ? `HTTP ${end.status}` : end.reason || `code ${end.code}`);
    this.emit("error", new ConnectionError(`${name} connection failed: ${why}`));
    // A browser hides why an upgrade failed: a token that may be stale is not reused.
    const stale = !this.tokenFresh;
    if (end.status === 401 || (end.status === undefined && stale)) this.token = null;
    if (end.status === 401 && stale) {
      // A cached token was refused: a fresh one may pass on the same transport at once.
      this.round.unshift(this.linkTransport);
      return void this.attempt();
    }
    if (end.status === 400 && end.errorCode === "invalid_since") this.positions.clear();
    if (this.round.length) return void this.attempt();
    this.retryLater();
  }

  /** An established connection ended: the close-code table decides what comes next. */
  private onLost(end: LinkEnd, nextFirst: number): void {
    const after = afterClose(end.code);
    this.emit("disconnected", {
      code: end.code,
      reason: end.reason,
      reconnecting: after !== "stop",
    });
    if (after === "stop") {
      this.token = null;
      this.stop(new ConnectionError(`closed by the server: ${end.code} ${end.reason}`.trim()));
      return;
    }
    this.machine.move("reconnecting");
    this.failures = 0;
    if (after === "new_token") {
      this.token = null;
      this.startRound(nextFirst);
    } else {
      this.round = [];
      this.alarms.arm("retry", backoffDelay(this.failures++, this.random), () =>
        this.startRound(nextFirst),
      );
    }
  }

  // ---- an open connection ----

  private onFrame(body: unknown): void {
    const inbound = classify(body);
    switch (inbound.kind) {
      case "connected":
        if (!this.linkUp) this.onConnected(inbound.body);
        return;
      case "push":
        this.positions.see(inbound.body.meta.position);
        this.emit("push", inbound.body);
        return;
      case "reply":
        this.requests.answer(inbound.body);
        return;
      case "presence":
        this.emit("presence", inbound.body);
        return;
      default:
        return;
    }
  }

  private onConnected(hello: Connected): void {
    this.alarms.cancel("handshake");
    this.linkUp = true;
    this.hello = hello;
    this.preferred = this.linkTransport;
    this.failures = 0;
    this.round = [];
    this.tokenFresh = false;
    this.lastAlive = this.timers.now();
    const resumed = this.sentSince !== "";
    // A replay follows a recovered `connected`: its position is reached only after it.
    if (!resumed || hello.recovered !== true) this.positions.merge(hello.position);
    this.roomSet.clear();
    for (const room of hello.rooms) this.roomSet.add(room);
    for (const refused of hello.refused ?? []) {
      if (typeof refused === "string") this.topicSet.delete(refused);
    }
    this.tokenExpiresAt =
      typeof hello.expires_in === "number" ? this.timers.now() + hello.expires_in * 1000 : null;
    this.scheduleRefresh(hello.expires_in);
    this.watch();
    this.machine.move("connected");
    this.emit("connected", hello);
    if (resumed && hello.recovered === false) {
      this.emit("continuity_lost", { connected: hello, since: this.sentSince });
    }
    for (const waiter of this.waiters.splice(0)) waiter.resolve(hello);
    const send = this.sender();
    if (send) this.requests.flush(send);
  }

  /** A ping every interval on a WebSocket; a link silent too long is dropped. */
  private watch(): void {
    const sse = this.transport === "sse";
    const interval = this.options.pingIntervalMs ?? 10_000;
    const silence = sse
      ? (this.options.sseSilenceMs ?? 35_000)
      : interval + (this.options.pongTimeoutMs ?? 10_000);
    const tick = sse ? Math.min(interval, silence) : interval;
    this.alarms.arm("watchdog", tick, () => {
      if (this.timers.now() - this.lastAlive >= silence) {
        const failed = this.linkTransport;
        this.dropLink();
        this.requests.requeue();
        this.alarms.cancel("refresh");
        // A transport that goes silent may be one the network spoils: try the next first.
        this.onLost(
          { code: ABNORMAL_CLOSE, reason: "no sign of life" },
          (failed + 1) % this.transports.length,
        );
        return;
      }
      if (!sse) this.requests.make("ping", undefined, this.sender()).catch(() => {});
      this.watch();
    });
  }

  private scheduleRefresh(expiresIn: number | undefined): void {
    if (typeof expiresIn !== "number") return;
    const epoch = this.epoch;
    this.alarms.arm("refresh", refreshDelay(expiresIn, this.random), () => {
      void this.refresh(epoch);
    });
  }

  /** Renew the open connection's token in place, ahead of its expiry. */
  private async refresh(epoch: number): Promise<void> {
    let token: string;
    try {
      token = await this.options.getToken();
    } catch (error) {
      if (epoch !== this.epoch) return;
      if (error instanceof UnauthorizedError) return this.stop(error);
      this.emit("error", asError(error));
      return this.refreshAgainSoon(epoch);
    }
    if (epoch !== this.epoch) return;
    try {
      const reply = await this.requests.make("refresh", { token }, this.sender());
      if (epoch !== this.epoch) return;
      this.token = token;
      const expiresIn = typeof reply["expires_in"] === "number" ? reply["expires_in"] : undefined;
      this.tokenExpiresAt = expiresIn === undefined ? null : this.timers.now() + expiresIn * 1000;
      const revoked = Array.isArray(reply["revoked"]) ? reply["revoked"].map(String) : [];
      for (const name of revoked) {
        this.roomSet.delete(name);
        this.topicSet.delete(name);
        this.topicSet.delete(topicSpec(name, "*"));
      }
      this.emit("refreshed", { expires_in: expiresIn ?? 0, revoked });
      this.scheduleRefresh(expiresIn);
    } catch (error) {
      if (epoch !== this.epoch) return;
      this.emit("error", asError(error));
      this.refreshAgainSoon(epoch);
    }
  }

  /** While the old token holds (and its grace after), a failed refresh is tried again. */
  private refreshAgainSoon(epoch: number): void {
    const left = (this.tokenExpiresAt ?? this.timers.now()) - this.timers.now();
    const delay = Math.min(5_000, Math.max(500, left / 4));
    this.alarms.arm("refresh", delay, () => void this.refresh(epoch));
  }

  // ---- stopping ----

  /** Close the current link without hearing from it again. */
  private dropLink(): void {
    const link = this.link;
    this.epoch++;
    this.link = null;
    this.linkUp = false;
    link?.close();
  }

  private stop(error: Error): void {
    this.dropLink();
    this.alarms.cancelAll();
    this.round = [];
    if (this.state !== "disconnected") this.machine.move("disconnected");
    this.requests.failAll(error instanceof ConnectionError ? error : new ConnectionError(error.message));
    for (const waiter of this.waiters.splice(0)) waiter.reject(error);
    if (!(error instanceof ConnectionError && error.message === "disconnected")) {
      this.emit("error", error);
    }
  }

  private emit<K extends keyof RoomcastEvents>(event: K, value: RoomcastEvents[K]): void {
    // A handler's own error must not break the client: it surfaces on its own.
    this.events.emit(event, value, (error) =>
      queueMicrotask(() => {
        throw error;
      }),
    );
  }

  private webSocketImpl(): WebSocketConstructor {
    const impl =
      this.options.websocket ??
      (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!impl) throw new Error("no WebSocket here: pass one as the `websocket` option");
    return impl;
  }

  private fetchImpl(): Fetch {
    const impl = this.options.fetch ?? (globalThis as { fetch?: Fetch }).fetch;
    if (!impl) throw new Error("no fetch here: pass one as the `fetch` option");
    return impl.bind(globalThis);
  }
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
