// Calls to the publisher's /v1/admin/* with the operator's key (kept for the tab only).

const KEY_STORE = "roomcast-console-key";

export class Unauthorized extends Error {}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function savedKey(): string | null {
  return sessionStorage.getItem(KEY_STORE);
}

export function saveKey(key: string | null): void {
  if (key === null) sessionStorage.removeItem(KEY_STORE);
  else sessionStorage.setItem(KEY_STORE, key);
}

function headers(extra?: Record<string, string>): Record<string, string> {
  return { Authorization: `Bearer ${savedKey() ?? ""}`, ...extra };
}

async function failure(response: Response): Promise<Error> {
  if (response.status === 401) return new Unauthorized("the admin key was refused");
  let code = "error";
  let message = `${response.status} ${response.statusText}`;
  try {
    const body: unknown = await response.json();
    const error = (body as { error?: { code?: string; message?: string } }).error;
    if (error?.code) code = error.code;
    if (error?.message) message = `${response.status}: ${error.message}`;
  } catch {
    // not JSON: the status says enough
  }
  return new ApiError(response.status, code, message);
}

export async function getJson<T>(path: string): Promise<T> {
  const response = await fetch(path, { headers: headers() });
  if (!response.ok) throw await failure(response);
  return (await response.json()) as T;
}

export async function postJson<T>(path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const init: RequestInit = { method: "POST", headers: headers({ "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(path, init);
  if (!response.ok && response.status !== 207) throw await failure(response);
  return { status: response.status, body: (await response.json()) as T };
}

export async function openStream(path: string, signal: AbortSignal): Promise<Response> {
  const response = await fetch(path, { headers: headers({ Accept: "text/event-stream" }), signal });
  if (!response.ok || response.body === null) throw await failure(response);
  return response;
}
