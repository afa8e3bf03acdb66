import { RoomcastClient } from "./roomcast.js";

const $ = (id) => document.getElementById(id);
const host = window.location.hostname || "localhost";
$("auth-url").value = `http://${host}:8080`;
$("publisher-url").value = `http://${host}:8082`;

let client = null;
let received = 0;
let recoveredCount = 0;
let replaying = false;
// Where the page links a push's trace: set by the edge's TRACE_UI_URL, empty when off.
let traceUi = "";

fetch("config.json")
  .then((response) => (response.ok ? response.json() : {}))
  .then((config) => {
    const url = config.traceUiUrl ?? "";
    traceUi = /^https?:\/\//.test(url) ? url : "";
    document.body.classList.toggle("tracing", Boolean(traceUi));
  })
  .catch(() => {});

function traceCell(push) {
  const cell = document.createElement("td");
  cell.className = "trace-col";
  const traceId = push.meta?.trace_id;
  if (traceUi && traceId) {
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

function setStatus(text, kind) {
  $("status").textContent = text;
  $("status").className = `status ${kind}`;
}

function showState() {
  if (!client) return;
  $("my-rooms").textContent = client.rooms.join(", ") || "–";
  $("my-subs").textContent = client.subscriptions.map(([t, k]) => `${t}:${k}`).join(", ") || "–";
  $("counts").textContent = `${received} received · ${recoveredCount} recovered after reconnects`;
}

function latencyOf(push) {
  const sent = Date.parse(push.meta?.receive_time ?? "");
  return Number.isNaN(sent) ? "" : `${Math.max(0, Date.now() - sent)} ms`;
}

function addRow(push) {
  const row = document.createElement("tr");
  if (replaying) row.className = "recovered";
  const cells = [
    new Date().toLocaleTimeString(),
    push.topic ?? "",
    push.type ?? "",
    push.room ?? "",
    JSON.stringify(push.payload),
    latencyOf(push),
    push.meta?.position ?? "",
  ];
  for (const [i, text] of cells.entries()) {
    const cell = document.createElement("td");
    if (i === 4) cell.className = "payload";
    cell.textContent = text;
    row.appendChild(cell);
  }
  row.appendChild(traceCell(push));
  $("messages").prepend(row);
  while ($("messages").children.length > 200) $("messages").lastChild.remove();
}

async function fetchToken() {
  const request = { device_id: $("device-id").value || "demo-device", is_login: false };
  const ttl = Number.parseInt($("token-ttl").value, 10);
  if (ttl > 0) request.ttl = ttl;
  const response = await fetch(`${$("auth-url").value}/v1/tokens`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(request),
  });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error?.message ?? `auth answered ${response.status}`);
  return body.token;
}

function replyText(reply) {
  const recovered = reply.recovered === undefined ? "" : ` (recovered: ${reply.recovered})`;
  return `${reply.action}: ${reply.status}${recovered}`;
}

async function call(action) {
  try {
    const reply = await action();
    $("last-reply").textContent = replyText(reply);
  } catch (error) {
    $("last-reply").textContent = error.reply ? replyText(error.reply) + ` — ${error.message}` : error.message;
  }
  showState();
}

$("connect").onclick = async () => {
  const rooms = $("rooms").value.split(",").map((r) => r.trim()).filter(Boolean);
  const wsUrl = `${window.location.protocol === "https:" ? "wss" : "ws"}://${window.location.host}/ws`;
  client = new RoomcastClient(wsUrl, { token: fetchToken, rooms });
  client.onmessage = (push) => {
    received += 1;
    if (replaying) recoveredCount += 1;
    addRow(push);
    showState();
  };
  client.onconnected = (hello) => {
    setStatus("connected", "on");
    const refused = hello.refused?.length ? ` · refused: ${JSON.stringify(hello.refused)}` : "";
    const recovered = hello.recovered === undefined ? "" : ` · recovered: ${hello.recovered}`;
    $("connection-info").textContent = `connection ${hello.connection_id} · rooms ${hello.rooms.join(", ") || "–"}${refused}${recovered} · position ${hello.position}`;
    // Messages that arrive in the same moment as a recovering `connected` are the replay.
    replaying = hello.recovered === true;
    setTimeout(() => { replaying = false; }, 300);
    showState();
  };
  client.ondisconnected = () => setStatus("reconnecting…", "wait");
  watchLifetime(client);
  setStatus("connecting…", "wait");
  try {
    await client.connect();
    $("connect").disabled = true;
    $("disconnect").disabled = false;
  } catch (error) {
    setStatus("disconnected", "off");
    $("connection-info").textContent = error.message;
  }
};

$("disconnect").onclick = () => {
  client?.close();
  $("refresh-token").disabled = true;
  setStatus("disconnected", "off");
  $("connect").disabled = false;
  $("disconnect").disabled = true;
};

$("join").onclick = () => call(() => client.join($("room").value.trim()));
$("leave").onclick = () => call(() => client.leave($("room").value.trim()));
$("subscribe").onclick = () => call(() => client.subscribe($("sub-topic").value.trim(), $("sub-type").value.trim() || "*"));
$("unsubscribe").onclick = () => call(() => client.unsubscribe($("sub-topic").value.trim(), $("sub-type").value.trim() || "*"));

$("publish").onclick = async () => {
  let payload;
  try {
    payload = JSON.parse($("pub-payload").value);
  } catch {
    payload = $("pub-payload").value;
  }
  const body = { payload };
  for (const [field, id] of [["topic", "pub-topic"], ["type", "pub-type"], ["room", "pub-room"]]) {
    const value = $(id).value.trim();
    if (value) body[field] = value;
  }
  const response = await fetch(`${$("publisher-url").value}/v1/messages`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  $("publish-result").textContent = response.ok
    ? `published ${answer.message_id} at ${answer.position}`
    : `error ${response.status}: ${answer.error?.message ?? JSON.stringify(answer)}`;
};

// ---- token lifetime: the connection's token, its remaining life and refreshes ----

let lifetimeTicker = null;

function showLifetime() {
  if (!client) return;
  const left = client.expiresIn;
  const life = left === null ? "token lifetime unknown" : left > 0 ? `token expires in ${Math.ceil(left)} s` : `token expired ${Math.floor(-left)} s ago`;
  $("token-life").textContent = `${life} · refreshed ${client.refreshes}`;
}

function watchLifetime(watched) {
  watched.onrefresh = (reply) => {
    if (reply.revoked?.length) $("last-reply").textContent = `refresh: revoked ${reply.revoked.join(", ")}`;
    showLifetime();
    showState();
  };
  const onconnected = watched.onconnected;
  watched.onconnected = (hello) => {
    onconnected(hello);
    $("refresh-token").disabled = false;
    showLifetime();
  };
  const onterminal = watched.onterminal;
  watched.onterminal = (event) => {
    onterminal(event);
    setStatus(`closed ${event.code}${event.reason ? ` (${event.reason})` : ""}`, "off");
    $("refresh-token").disabled = true;
  };
  if (lifetimeTicker) clearInterval(lifetimeTicker);
  lifetimeTicker = setInterval(showLifetime, 1000);
}

$("refresh-token").onclick = () => call(() => client.refresh());
