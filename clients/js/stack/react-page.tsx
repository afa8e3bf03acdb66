/**
 * A React page for the StrictMode test: one client made outside React, a topic feed,
 * a room's presence and the state, all under <StrictMode>. It counts the WebSockets
 * it opens and the requests it sends, for the test to read from `window.seen`.
 */

import { StrictMode } from "react";
import { createRoot } from "react-dom/client";

import { Roomcast } from "../src/index.js";
import { RoomcastProvider, usePresence, useRoom, useRoomcast, useTopic } from "../src/react/index.js";

interface Seen {
  sockets: number;
  sent: string[];
}

declare global {
  interface Window {
    seen: Seen;
  }
}

const seen: Seen = { sockets: 0, sent: [] };
window.seen = seen;

class CountingWebSocket extends WebSocket {
  constructor(url: string) {
    super(url);
    seen.sockets += 1;
  }

  override send(data: string): void {
    seen.sent.push((JSON.parse(data) as { action: string }).action);
    super.send(data);
  }
}

const query = new URLSearchParams(window.location.search);
const param = (name: string): string => query.get(name) ?? "";
const topic = param("topic");
const room = param("room");

const client = new Roomcast({
  url: param("edge"),
  websocket: CountingWebSocket,
  transports: ["websocket"],
  getToken: async () => {
    const response = await fetch(`${param("auth")}/v1/tokens`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ device_id: "react-page", user_id: "react-user", is_login: true }),
    });
    return ((await response.json()) as { token: string }).token;
  },
});

function State() {
  const { state } = useRoomcast();
  return <p id="state">{state}</p>;
}

function Feed() {
  const { messages, ready } = useTopic(topic, "*");
  return (
    <ul id="feed" data-ready={String(ready)}>
      {messages.map((push) => (
        <li key={String(push.meta.message_id)}>{JSON.stringify(push.payload)}</li>
      ))}
    </ul>
  );
}

function RoomFeed() {
  const { messages } = useRoom(room);
  return (
    <ol id="room-feed">
      {messages.map((push) => (
        <li key={String(push.meta.message_id)}>{JSON.stringify(push.payload)}</li>
      ))}
    </ol>
  );
}

function Who() {
  const { presence } = usePresence(room);
  return <p id="presence">{presence ? `${presence.connections} connections, ${presence.users} users` : "…"}</p>;
}

const root = document.getElementById("root");
if (root) {
  createRoot(root).render(
    <StrictMode>
      <RoomcastProvider client={client}>
        <State />
        <Feed />
        <RoomFeed />
        <Who />
      </RoomcastProvider>
    </StrictMode>,
  );
}
