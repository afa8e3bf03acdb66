// The forms: publish, rooms and presence, message history, a user's connections.

import { ApiError, getJson, postJson } from "./api";
import { byId, el, errorText, query, row, say, time, value } from "./dom";

interface Member {
  connection_id: string;
  user_id: string;
  device_id: string;
  joined_at: number;
}

interface Presence {
  room: string;
  connections: number;
  users: number;
  members: Member[];
}

interface Push {
  topic?: string;
  type?: string;
  room?: string;
  payload: unknown;
  meta: { receive_time: string; message_id: string; position: string };
}

interface Connection {
  edge_id: string;
  connection_id: string;
  device_id: string;
  rooms: string[];
  subscriptions: string[];
  connected_at: number;
}

function onSubmit(id: string, run: () => Promise<void>): void {
  byId<HTMLFormElement>(id).addEventListener("submit", (event) => {
    event.preventDefault();
    void run();
  });
}

function names(): Record<string, string> {
  const message: Record<string, string> = {};
  for (const field of ["room", "topic", "type"]) {
    const text = value(`pub-${field}`);
    if (text) message[field] = text;
  }
  return message;
}

async function publish(): Promise<void> {
  let payload: unknown;
  try {
    payload = JSON.parse(byId<HTMLTextAreaElement>("pub-payload").value);
  } catch (error) {
    say("pub-result", `the payload is not JSON: ${errorText(error)}`, true);
    return;
  }
  const batch = byId<HTMLInputElement>("pub-batch").checked;
  try {
    if (batch) {
      if (!Array.isArray(payload)) {
        say("pub-result", "a batch takes a JSON array: one payload per message", true);
        return;
      }
      const messages = payload.map((p: unknown) => ({ ...names(), payload: p }));
      const answer = await postJson<{ results: { status: number; position?: string }[] }>(
        "/v1/admin/messages/batch",
        { messages },
      );
      const published = answer.body.results.filter((r) => r.status === 202).length;
      say("pub-result", `published ${published} of ${messages.length} (${answer.status})`, published < messages.length);
    } else {
      const answer = await postJson<{ message_id: string; position: string }>("/v1/admin/messages", {
        ...names(),
        payload,
      });
      say("pub-result", `published at ${answer.body.position} (id ${answer.body.message_id})`);
    }
  } catch (error) {
    say("pub-result", errorText(error), true);
  }
}

let roomCursor: string | null = null;

async function searchRooms(more: boolean): Promise<void> {
  try {
    const body = await getJson<{ rooms: { room: string; connections: number; users: number }[]; cursor: string | null }>(
      `/v1/admin/rooms${query({ q: value("room-search"), cursor: more && roomCursor ? roomCursor : "", limit: "50" })}`,
    );
    roomCursor = body.cursor;
    const rows = body.rooms.map((r) => {
      const open = el("button", r.room, "link");
      open.type = "button";
      open.addEventListener("click", () => {
        byId<HTMLInputElement>("presence-room").value = r.room;
        void presence();
      });
      return row([open, String(r.connections), String(r.users)]);
    });
    const list = byId("room-rows");
    if (more) list.append(...rows);
    else list.replaceChildren(...rows);
    byId("room-more").toggleAttribute("disabled", roomCursor === null);
    say("room-result", `${list.childElementCount} rooms listed${roomCursor ? ", more to load" : ""}`);
  } catch (error) {
    say("room-result", errorText(error), true);
  }
}

async function presence(): Promise<void> {
  const room = value("presence-room");
  if (!room) return;
  try {
    const body = await getJson<{ presence: Presence }>(`/v1/admin/rooms/${encodeURIComponent(room)}/presence`);
    const p = body.presence;
    say("presence-result", `${p.room}: ${p.connections} connections, ${p.users} users`);
    byId("presence-rows").replaceChildren(
      ...p.members.map((m) => row([m.user_id, m.device_id, m.connection_id, time(m.joined_at)])),
    );
  } catch (error) {
    say("presence-result", errorText(error), true);
  }
}

async function history(): Promise<void> {
  try {
    const body = await getJson<{ messages: Push[]; scanned: number }>(
      `/v1/admin/history${query({ room: value("hist-room"), topic: value("hist-topic"), type: value("hist-type") })}`,
    );
    say("hist-result", `${body.messages.length} matching among the last ${body.scanned} records of the bus`);
    byId("hist-rows").replaceChildren(
      ...body.messages
        .slice()
        .reverse()
        .map((m) =>
          row([
            m.meta.receive_time.slice(0, 23).replace("T", " "),
            m.room ?? "",
            m.topic ?? "",
            m.type ?? "",
            m.meta.position,
            el("code", JSON.stringify(m.payload)),
          ]),
        ),
    );
  } catch (error) {
    say("hist-result", errorText(error), true);
  }
}

async function closeConnection(id: string): Promise<void> {
  try {
    await postJson(`/v1/admin/connections/${encodeURIComponent(id)}/close`);
  } catch (error) {
    say("user-result", error instanceof ApiError && error.status === 404 ? `${id} is gone already` : errorText(error), true);
    return;
  }
  await connections(`closed ${id} (4003 closed by operator); `);
}

// Why a connection did or did not get a message: the delivery rules of the edges.
export function verdict(c: Pick<Connection, "rooms" | "subscriptions">, room: string, topic: string, type: string): string {
  const reasons: string[] = [];
  if (room && !c.rooms.includes(room)) reasons.push(`not in room ${room}`);
  if (topic) {
    const wanted = [`${topic}:*`, ...(type ? [`${topic}:${type}`] : [])];
    if (!c.subscriptions.some((s) => wanted.includes(s))) {
      reasons.push(`not subscribed to ${topic}:${type || "*"}`);
    }
  }
  return reasons.length === 0 ? "yes" : `no: ${reasons.join(", ")}`;
}

async function connections(done = ""): Promise<void> {
  const user = value("user-id");
  if (!user) return;
  try {
    const body = await getJson<{ connections: Connection[]; answered: number; expected: number }>(
      `/v1/admin/users/${encodeURIComponent(user)}/connections`,
    );
    const missing = body.answered < body.expected ? ` (only ${body.answered} of ${body.expected} edges answered)` : "";
    say("user-result", `${done}${body.connections.length} connections of ${user}${missing}`);
    byId("user-rows").replaceChildren(
      ...body.connections.map((c) => {
        const close = el("button", "close", "danger close-conn");
        close.type = "button";
        close.dataset.connection = c.connection_id;
        close.addEventListener("click", () => void closeConnection(c.connection_id));
        const gets = verdict(c, value("why-room"), value("why-topic"), value("why-type"));
        return row([
          c.edge_id,
          c.connection_id,
          c.device_id,
          c.rooms.join(", ") || "—",
          c.subscriptions.join(", ") || "—",
          time(c.connected_at),
          el("span", gets, gets === "yes" ? "yes" : "failed"),
          close,
        ]);
      }),
    );
  } catch (error) {
    say("user-result", errorText(error), true);
  }
}

export function wireForms(): void {
  onSubmit("publish-form", publish);
  onSubmit("room-form", () => searchRooms(false));
  byId("room-more").addEventListener("click", () => void searchRooms(true));
  onSubmit("presence-form", presence);
  onSubmit("history-form", history);
  onSubmit("user-form", () => connections());
}
