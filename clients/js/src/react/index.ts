/**
 * @roomcast/client/react: a provider and hooks over one `Roomcast` client. Each hook
 * holds a lease (see leases.ts), so any number of components, and StrictMode's double
 * mount, share one subscription per topic and one join per room.
 */

import {
  createContext,
  createElement,
  useContext,
  useEffect,
  useState,
  useSyncExternalStore,
  type ReactNode,
} from "react";

import type { Roomcast } from "../client.js";
import type { State } from "../machine.js";
import type { Presence, Push } from "../protocol.js";
import { leasesOf } from "./leases.js";

const RoomcastContext = createContext<Roomcast | null>(null);

/** Pushes kept by a hook, newest last. */
export const KEPT_MESSAGES = 100;
/** How often usePresence asks again when the edge sends no join/leave events. */
export const PRESENCE_POLL_MS = 10_000;

export interface RoomcastProviderProps {
  /** create it once, outside render: `new Roomcast({...})` */
  client: Roomcast;
  /** connect while mounted (default true) */
  connect?: boolean;
  children?: ReactNode;
}

export function RoomcastProvider({ client, connect = true, children }: RoomcastProviderProps) {
  useEffect(() => {
    if (!connect) return;
    const lease = leasesOf(client).acquire(
      "connection",
      () => {
        // Failures reach the `error` event; the promise only says when it first connected.
        client.connect().catch(() => {});
        return Promise.resolve();
      },
      () => client.disconnect(),
      false,
    );
    return lease.release;
  }, [client, connect]);
  return createElement(RoomcastContext.Provider, { value: client }, children);
}

export interface RoomcastContextValue {
  client: Roomcast;
  state: State;
}

export function useRoomcast(): RoomcastContextValue {
  const client = useContext(RoomcastContext);
  if (!client) throw new Error("useRoomcast needs a <RoomcastProvider> above it");
  const state = useSyncExternalStore(
    (changed) => client.on("state", changed),
    () => client.state,
    () => client.state,
  );
  return { client, state };
}

export interface Feed {
  /** the last pushes that matched, oldest first */
  messages: Push[];
  last: Push | undefined;
  /** the server accepted the subscription or join */
  ready: boolean;
  error: Error | null;
}

const EMPTY: Feed = { messages: [], last: undefined, ready: false, error: null };

function useFeed(
  key: string,
  open: (client: Roomcast) => Promise<unknown>,
  close: (client: Roomcast) => void,
  matches: (push: Push) => boolean,
): Feed {
  const { client } = useRoomcast();
  const [feed, setFeed] = useState<Feed>(EMPTY);
  useEffect(() => {
    let live = true;
    setFeed(EMPTY);
    const off = client.on("push", (push) => {
      if (!matches(push)) return;
      setFeed((f) => ({ ...f, messages: [...f.messages, push].slice(-KEPT_MESSAGES), last: push }));
    });
    const lease = leasesOf(client).acquire(
      key,
      () => open(client),
      () => close(client),
    );
    lease.ready.then(
      () => live && setFeed((f) => ({ ...f, ready: true, error: null })),
      (error: unknown) =>
        live && setFeed((f) => ({ ...f, error: error instanceof Error ? error : new Error(String(error)) })),
    );
    return () => {
      live = false;
      off();
      lease.release();
    };
    // `key` names the subscription; the callbacks are derived from it.
  }, [client, key]);
  return feed;
}

/** Pushes of a topic (and type; `*` for every type), subscribed while mounted. */
export function useTopic(topic: string, type = "*"): Feed {
  return useFeed(
    `topic\u0000${topic}\u0000${type}`,
    (client) => client.subscribe(topic, type),
    (client) => void client.unsubscribe(topic, type).catch(() => {}),
    (push) => push.topic === topic && (type === "*" || push.type === type),
  );
}

/** Pushes addressed to a room, joined while mounted. */
export function useRoom(room: string): Feed {
  return useFeed(
    roomKey(room),
    (client) => client.join(room),
    (client) => void client.leave(room).catch(() => {}),
    (push) => push.room === room,
  );
}

function roomKey(room: string): string {
  return `room\u0000${room}`;
}

export interface PresenceState {
  presence: Presence | null;
  error: Error | null;
}

/** Who is in a room (the hook joins it while mounted); kept current. */
export function usePresence(room: string): PresenceState {
  const { client } = useRoomcast();
  const [state, setState] = useState<PresenceState>({ presence: null, error: null });
  useEffect(() => {
    let live = true;
    let joined = false;
    setState({ presence: null, error: null });
    const load = (): void => {
      if (!live || !joined || client.state !== "connected") return;
      client.presence(room).then(
        (reply) => live && setState({ presence: reply["presence"] as Presence, error: null }),
        (error: unknown) =>
          live && setState((s) => ({ ...s, error: error instanceof Error ? error : new Error(String(error)) })),
      );
    };
    const lease = leasesOf(client).acquire(
      roomKey(room),
      () => client.join(room),
      () => void client.leave(room).catch(() => {}),
    );
    lease.ready.then(
      () => {
        joined = true;
        load();
      },
      (error: unknown) =>
        live && setState({ presence: null, error: error instanceof Error ? error : new Error(String(error)) }),
    );
    const offs = [
      client.on("presence", (event) => event.room === room && load()),
      client.on("connected", load),
    ];
    const poll = setInterval(load, PRESENCE_POLL_MS);
    return () => {
      live = false;
      clearInterval(poll);
      for (const off of offs) off();
      lease.release();
    };
  }, [client, room]);
  return state;
}
