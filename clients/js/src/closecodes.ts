/**
 * What the client does after the server ends a connection, by close code: the
 * contract's close-code table. Codes it does not list (1006 for a lost network, 1001,
 * 1011, …) are resumed like a heartbeat timeout.
 */

export type AfterClose =
  /** reconnect after a jittered backoff and resume with `since` */
  | "resume"
  /** get a new token and reconnect at once, resuming with `since` */
  | "new_token"
  /** stop: only a new decision (a `connect()` call) reconnects */
  | "stop";

export const TOKEN_EXPIRED = 4001;

const TABLE: Readonly<Record<number, AfterClose>> = {
  4000: "resume", // heartbeat timeout
  4001: "new_token", // token expired
  4008: "resume", // slow consumer
  1012: "resume", // service restart
  1008: "stop", // token revoked / rate limit exceeded: not with the same token
  4003: "stop", // closed by operator
  1009: "stop", // frame too big: the same input would fail again
  1002: "stop", // protocol error
  1007: "stop", // bad UTF-8
};

export function afterClose(code: number): AfterClose {
  return TABLE[code] ?? "resume";
}
