/** The edge's wire format as the client sees it: frames, replies and connect URLs. */

export type Action =
  | "subscribe"
  | "unsubscribe"
  | "join"
  | "leave"
  | "presence"
  | "refresh"
  | "ping";

export interface RequestFrame {
  request_id: string;
  timestamp: number;
  action: Action;
  params?: Record<string, unknown>;
}

/** The server's answer to one request; `status` is "ok" or "fail". */
export interface Reply {
  request_id: string;
  action: string;
  status: "ok" | "fail";
  error_message: string;
  timestamp: number;
  [extra: string]: unknown;
}

export interface PushMeta {
  receive_time?: string;
  message_id?: string;
  position?: string;
  [extra: string]: unknown;
}

/** A message the edge pushes; `payload` is exactly what was published. */
export interface Push {
  topic?: string;
  type?: string;
  room?: string;
  payload: unknown;
  meta: PushMeta;
}

/** The first message of every connection. */
export interface Connected {
  action: "connected";
  status: string;
  connection_id: string;
  rooms: string[];
  position: string;
  timestamp: number;
  expires_in?: number;
  recovered?: boolean;
  refused?: unknown[];
  [extra: string]: unknown;
}

export interface Member {
  connection_id: string;
  user_id: string;
  device_id: string;
  joined_at: number;
}

export interface Presence {
  room: string;
  connections: number;
  users: number;
  members: Member[];
}

/** A join or leave in a room this connection is in (when the edge sends them). */
export interface PresenceEvent {
  action: "presence";
  event: "join" | "leave";
  room: string;
  member: Member;
  timestamp: number;
}

export interface HistoryQuery {
  room?: string;
  topic?: string;
  type?: string;
  since?: string;
  from_ms?: number;
  limit?: number;
}

export interface HistoryPage {
  messages: Push[];
  next: string;
  complete: boolean;
}

/** What a frame from the server is; anything else is ignored. */
export type Inbound =
  | { kind: "connected"; body: Connected }
  | { kind: "reply"; body: Reply }
  | { kind: "push"; body: Push }
  | { kind: "presence"; body: PresenceEvent }
  | { kind: "other" };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function classify(body: unknown): Inbound {
  if (!isObject(body)) return { kind: "other" };
  if (body["action"] === "connected" && typeof body["connection_id"] === "string") {
    return { kind: "connected", body: body as unknown as Connected };
  }
  if (isObject(body["meta"])) return { kind: "push", body: body as unknown as Push };
  if (typeof body["request_id"] === "string" && typeof body["status"] === "string") {
    return { kind: "reply", body: body as unknown as Reply };
  }
  if (body["action"] === "presence" && typeof body["event"] === "string") {
    return { kind: "presence", body: body as unknown as PresenceEvent };
  }
  return { kind: "other" };
}

/** What a connect asks for besides the token. */
export interface ConnectQuery {
  rooms: readonly string[];
  topics: readonly string[];
  since: string;
}

/** `/ws` or `/sse` under the edge's base URL, with the connect query. */
export function connectUrl(
  base: string,
  path: "/ws" | "/sse",
  token: string,
  query: ConnectQuery,
): string {
  const params = new URLSearchParams({ token });
  if (query.rooms.length) params.set("roomIds", query.rooms.join(","));
  if (query.topics.length) params.set("topics", query.topics.join(","));
  if (query.since) params.set("since", query.since);
  let url = base.replace(/\/+$/, "") + path;
  if (path === "/ws") url = url.replace(/^http/, "ws");
  return `${url}?${params.toString()}`;
}

/** "order:event" for a subscription; the edge's own spelling in `topics=`. */
export function topicSpec(topic: string, type: string): string {
  return `${topic}:${type || "*"}`;
}
