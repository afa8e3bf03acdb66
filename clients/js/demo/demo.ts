/**
 * The demo page the edge serves at /demo/: get a token, connect, join, subscribe,
 * publish, and watch pushes arrive. Built on @roomcast/client (bundled by
 * scripts/demo.mjs); the edge tells the page where auth and the publisher are.
 */

import { RequestError, Roomcast, type Connected, type Push, type State } from "../src/index.js";

interface DemoConfig {
  authUrl?: string;
  publisherUrl?: string;
  traceUiUrl?: string;
}

function $(id: string): HTMLElement {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no #${id}`);
  return element;
}

function input(id: string): HTMLInputElement | HTMLTextAreaElement {
  return $(id) as HTMLInputElement | HTMLTextAreaElement;
}

function button(id: string): HTMLButtonElement {
  return $(id) as HTMLButtonElement;
}

function value(id: string): string {
  return input(id).value.trim();
}

let client: Roomcast | null = null;
let offs: Array<() => void> = [];
let received = 0;
let recovered = 0;
let refreshes = 0;
let replaying = false;
// Where the page links a push's trace: the edge's TRACE_UI_URL, empty when off.
let traceUi = "";

const BADGES: Record<State, [string, string]> = {
  disconnected: ["disconnected", "off"],
  connecting: ["connecting…", "wait"],
  connected: ["connected", "on"],
  reconnecting: ["reconnecting…", "wait"],
};

async function loadConfig(): Promise<void> {
  const host = window.location.hostname || "localhost";
  let config: DemoConfig = {};
  try {
    const response = await fetch("config.json");
    if (response.ok) config = (await response.json()) as DemoConfig;
  } catch {
    // an older edge: fall back to the local defaults below
  }
  // A test may have filled the fields already: what is there wins.
  if (!value("auth-url")) input("auth-url").value = config.authUrl ?? `http://${host}:8080`;
  if (!value("publisher-url")) {
    input("publisher-url").value = config.publisherUrl ?? `http://${host}:8082`;
  }
  const trace = config.traceUiUrl ?? "";
  traceUi = /^https?:\/\//.test(trace) ? trace : "";
  document.body.classList.toggle("tracing", Boolean(traceUi));
}

function list(id: string): string[] {
  return value(id)
    .split(",")
    .map((part) => part.trim())
    .filter(Boolean);
}

async function fetchToken(): Promise<string> {
  const request: Record<string, unknown> = {
    device_id: value("device-id") || "demo-device",
    is_login: false,
  };
  const ttl = Number.parseInt(value("token-ttl"), 10);
  if (ttl > 0) request["ttl"] = ttl;
  const response = await fetch(`${value("auth-url")}/v1/tokens`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(request),
  });
  const body = (await response.json()) as { token?: string; error?: { message?: string } };
  if (!response.ok || !body.token) {
    throw new Error(body.error?.message ?? `auth answered ${response.status}`);
  }
  return body.token;
}

// ---- what the page shows ----

function showState(state: State): void {
  const [text, kind] = BADGES[state];
  $("status").textContent = text;
  $("status").className = `status ${kind}`;
  const up = state === "connected";
  button("connect").disabled = state !== "disconnected";
  button("disconnect").disabled = state === "disconnected";
  for (const id of ["join", "leave", "subscribe", "unsubscribe"]) button(id).disabled = !up;
  $("step2-hint").textContent = up ? "" : "Connect first (step 1): rooms and subscriptions belong to a connection.";
  showMine();
  showReach();
}

function showMine(): void {
  $("my-rooms").textContent = client?.rooms.join(", ") || "–";
  $("my-subs").textContent = client?.topics.join(", ") || "–";
  $("counts").textContent = `${received} received · ${recovered} recovered after reconnects`;
}

function showConnected(hello: Connected): void {
  const refused = hello.refused?.length ? ` · refused: ${JSON.stringify(hello.refused)}` : "";
  const resumed = hello.recovered === undefined ? "" : ` · recovered: ${hello.recovered}`;
  $("connection-info").textContent =
    `connection ${hello.connection_id} over ${client?.transport ?? "?"} · rooms ${hello.rooms.join(", ") || "–"}` +
    `${refused}${resumed} · position ${hello.position}`;
  // Pushes that arrive right after a recovering `connected` are the replay.
  replaying = hello.recovered === true;
  setTimeout(() => (replaying = false), 300);
  $("last-reply").textContent = "";
  showMine();
  showReach();
}

function showLifetime(): void {
  const at = client?.expiresAt ?? null;
  const left = at === null ? null : (at - Date.now()) / 1000;
  const life =
    left === null
      ? "token lifetime unknown"
      : left > 0
        ? `token expires in ${Math.ceil(left)} s`
        : `token expired ${Math.floor(-left)} s ago`;
  $("token-life").textContent = client ? `${life} · refreshed ${refreshes}` : "";
}

/** Says whether the message in the publish form would reach this connection, and why not. */
function reach(): string {
  const topic = value("pub-topic");
  const type = value("pub-type") || "*";
  const room = value("pub-room");
  if (!client || client.state !== "connected") return "Connect (step 1) to receive messages on this page.";
  if (room && !client.rooms.includes(room)) {
    return `This connection will not receive it: it is not in room ${room}. Join the room in step 2.`;
  }
  if (topic) {
    const specs = client.topics;
    const subscribed = specs.includes(`${topic}:*`) || (type !== "*" && specs.includes(`${topic}:${type}`));
    if (!subscribed) {
      return `This connection will not receive it: it is not subscribed to ${topic}:${type}. Subscribe in step 2.`;
    }
  }
  if (!room && !topic) return "A broadcast: every connection receives it, this one too.";
  return room && topic
    ? `This connection receives it: it is in room ${room} and subscribed to ${topic}.`
    : "This connection receives it.";
}

function showReach(): void {
  $("reach").textContent = reach();
}

function latencyOf(push: Push): string {
  const sent = Date.parse(push.meta.receive_time ?? "");
  return Number.isNaN(sent) ? "" : `${Math.max(0, Date.now() - sent)} ms`;
}

function traceCell(push: Push): HTMLTableCellElement {
  const cell = document.createElement("td");
  cell.className = "trace-col";
  const traceId = push.meta["trace_id"];
  if (traceUi && typeof traceId === "string") {
    const link = document.createElement("a");
    link.href = `${traceUi}/trace/${encodeURIComponent(traceId)}`;
    link.target = "_blank";
    link.rel = "noopener";
    link.className = "trace-link";
    link.textContent = traceId.slice(0, 8);
    link.title = `trace ${traceId}`;
    cell.appendChild(link);
  }
  return cell;
}

function addRow(push: Push): void {
  const row = document.createElement("tr");
  if (replaying) row.className = "recovered";
  const cells = [
    new Date().toLocaleTimeString(),
    push.topic ?? "",
    push.type ?? "",
    push.room ?? "",
    JSON.stringify(push.payload),
    latencyOf(push),
    push.meta.position ?? "",
  ];
  cells.forEach((text, i) => {
    const cell = document.createElement("td");
    if (i === 4) cell.className = "payload";
    cell.textContent = text;
    row.appendChild(cell);
  });
  row.appendChild(traceCell(push));
  const body = $("messages");
  body.prepend(row);
  while (body.children.length > 200) body.lastElementChild?.remove();
}

// ---- actions ----

async function call(action: (c: Roomcast) => Promise<{ action: string; status: string; recovered?: unknown }>): Promise<void> {
  if (!client || client.state === "disconnected") {
    $("last-reply").textContent = "Connect first (step 1).";
    return;
  }
  try {
    const reply = await action(client);
    const resumed = reply.recovered === undefined ? "" : ` (recovered: ${JSON.stringify(reply.recovered)})`;
    $("last-reply").textContent = `${reply.action}: ${reply.status}${resumed}`;
  } catch (error) {
    $("last-reply").textContent =
      error instanceof RequestError
        ? `${error.reply.action}: fail — ${error.message}`
        : `failed: ${error instanceof Error ? error.message : String(error)}`;
  }
  showMine();
  showReach();
}

function connect(): void {
  for (const off of offs) off();
  received = recovered = refreshes = 0;
  const edge = `${window.location.protocol}//${window.location.host}`;
  const made = new Roomcast({
    url: edge,
    getToken: fetchToken,
    rooms: list("rooms"),
    topics: list("topics"),
  });
  client = made;
  offs = [
    made.on("state", ({ state }) => showState(state)),
    made.on("connected", showConnected),
    made.on("push", (push) => {
      received += 1;
      if (replaying) recovered += 1;
      addRow(push);
      showMine();
    }),
    made.on("refreshed", ({ revoked }) => {
      refreshes += 1;
      if (revoked.length) $("last-reply").textContent = `refresh: revoked ${revoked.join(", ")}`;
      showLifetime();
      showMine();
    }),
    made.on("disconnected", ({ code, reason, reconnecting }) => {
      if (!reconnecting && code !== 1000) {
        $("connection-info").textContent = `closed by the server: ${code} ${reason}; connect again to resume`;
      }
    }),
    made.on("error", (error) => {
      if (made.state !== "connected") $("connection-info").textContent = error.message;
    }),
    made.on("continuity_lost", () => {
      $("connection-info").textContent += " · some messages were lost while away";
    }),
  ];
  made.connect().catch((error: unknown) => {
    $("connection-info").textContent = error instanceof Error ? error.message : String(error);
  });
}

async function publish(): Promise<void> {
  const text = input("pub-payload").value;
  let payload: unknown;
  try {
    payload = JSON.parse(text);
  } catch {
    payload = text;
  }
  const body: Record<string, unknown> = { payload };
  for (const [field, id] of [
    ["topic", "pub-topic"],
    ["type", "pub-type"],
    ["room", "pub-room"],
  ] as const) {
    if (value(id)) body[field] = value(id);
  }
  try {
    const response = await fetch(`${value("publisher-url")}/v1/messages`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const answer = (await response.json()) as {
      message_id?: string;
      position?: string;
      error?: { message?: string };
    };
    $("publish-result").textContent = response.ok
      ? `published ${answer.message_id ?? ""} at ${answer.position ?? ""}`
      : `error ${response.status}: ${answer.error?.message ?? JSON.stringify(answer)}`;
  } catch (error) {
    $("publish-result").textContent = `the publisher cannot be reached at ${value("publisher-url")}: ${String(error)}`;
  }
}

function start(): void {
  button("connect").onclick = connect;
  button("disconnect").onclick = () => {
    client?.disconnect();
    $("connection-info").textContent = "disconnected by you";
  };
  button("join").onclick = () => void call((c) => c.join(value("room")));
  button("leave").onclick = () => void call((c) => c.leave(value("room")));
  button("subscribe").onclick = () =>
    void call((c) => c.subscribe(value("sub-topic"), value("sub-type") || "*"));
  button("unsubscribe").onclick = () =>
    void call((c) => c.unsubscribe(value("sub-topic"), value("sub-type") || "*"));
  button("publish").onclick = () => void publish();
  for (const id of ["pub-topic", "pub-type", "pub-room"]) input(id).addEventListener("input", showReach);
  showState("disconnected");
  setInterval(showLifetime, 1000);
  void loadConfig();
}

start();
