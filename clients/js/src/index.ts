/** @roomcast/client: a typed roomcast client for browsers and Node 18+. */

export { Roomcast } from "./client.js";
export type {
  DisconnectedEvent,
  RefreshedEvent,
  RoomcastEvents,
  RoomcastOptions,
} from "./client.js";
export { ConnectionError, HttpError, RequestError, UnauthorizedError } from "./errors.js";
export type { State } from "./machine.js";
export type {
  Connected,
  HistoryPage,
  HistoryQuery,
  Member,
  Presence,
  PresenceEvent,
  Push,
  PushMeta,
  Reply,
} from "./protocol.js";
export type { Timers } from "./timers.js";
export type { Fetch, TransportName, WebSocketConstructor } from "./transport.js";
