/** `GET /v1/history`: a page of past messages, authorised by a connection token. */

import { HttpError } from "./errors.js";
import type { HistoryPage, HistoryQuery } from "./protocol.js";
import type { Fetch } from "./transport.js";

export async function fetchHistory(
  fetch: Fetch,
  base: string,
  token: string,
  query: HistoryQuery,
): Promise<HistoryPage> {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined) params.set(key, String(value));
  }
  const response = await fetch(`${base}/v1/history?${params.toString()}`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  const body = (await response.json()) as HistoryPage & {
    error?: { code: string; message: string };
  };
  if (!response.ok) {
    const error = body.error ?? { code: "http_error", message: `HTTP ${response.status}` };
    throw new HttpError(response.status, error.code, error.message);
  }
  return body;
}
