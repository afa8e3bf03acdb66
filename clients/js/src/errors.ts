/** Errors the client hands to its user: each says what went wrong and what to do. */

import type { Reply } from "./protocol.js";

/** Thrown by a `getToken` that will never get a token: the client stops retrying. */
export class UnauthorizedError extends Error {
  constructor(message = "unauthorized") {
    super(message);
    this.name = "UnauthorizedError";
  }
}

/** The server answered a request with `status: "fail"`; `reply` is its answer. */
export class RequestError extends Error {
  readonly reply: Reply;

  constructor(reply: Reply) {
    super(reply.error_message || `${reply.action} failed`);
    this.name = "RequestError";
    this.reply = reply;
  }
}

/** A request could not be sent or answered: not connected, stopped, or timed out. */
export class ConnectionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConnectionError";
  }
}

/** An HTTP call of the client (history, the SSE uplink) was refused. */
export class HttpError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = "HttpError";
    this.status = status;
    this.code = code;
  }
}
