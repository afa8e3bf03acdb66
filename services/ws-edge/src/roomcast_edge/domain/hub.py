"""Who receives a message: connection registry with one index per way of addressing.

Indexes: room -> connections, (topic, type) -> connections (type "*" included as a
key of its own), and the set of all connections for broadcasts. Finding the
recipients of a message costs in proportion to the connections that could match,
never to every connection (except for a broadcast, which goes to all of them).

Rules (SPEC "Who receives a message"):
  room and topic -> connections in the room that subscribe to (topic, type) or (topic, "*")
  room only      -> connections in the room
  topic only     -> connections subscribed to (topic, type) or (topic, "*")
  neither        -> every connection
Each matching connection appears exactly once.

The hub never writes to a socket: it answers "who", the caller does the sending.
It is the one place a connection's rooms change, so `on_rooms` (set by the caller,
for presence) hears of every change, whichever request, refresh or close caused it.
Likewise `on_wanted` (for shared ingest) hears when a room or a topic gets its first
connection on this edge, and when it loses its last one.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable
from typing import Generic, TypeVar

ANY_TYPE = "*"

C = TypeVar("C", bound=Hashable)
K = TypeVar("K", bound=Hashable)

Subscription = tuple[str, str]  # (topic, type), type "*" for every type


class Hub(Generic[C]):
    def __init__(self) -> None:
        self._all: set[C] = set()
        self._rooms: dict[str, set[C]] = {}
        self._topics: dict[Subscription, set[C]] = {}
        self._rooms_of: dict[C, set[str]] = {}
        self._subs_of: dict[C, set[Subscription]] = {}
        self._subscription_count = 0
        # Subscriptions per topic, whatever their type: whether anyone here wants it.
        self._per_topic: dict[str, int] = {}
        # Called with a connection after its rooms changed (rooms_of tells the new ones).
        self.on_rooms: Callable[[C], None] | None = None
        # Called with (("room", name) or ("topic", name), wanted) when this edge's first
        # connection wants it or its last one stops wanting it.
        self.on_wanted: Callable[[tuple[str, str], bool], None] | None = None

    # ---- registry --------------------------------------------------------

    def add(self, conn: C) -> None:
        if conn in self._all:
            return
        self._all.add(conn)
        self._rooms_of[conn] = set()
        self._subs_of[conn] = set()

    def remove(self, conn: C) -> None:
        if conn not in self._all:
            return
        rooms = self._rooms_of.pop(conn)
        for room in rooms:
            self._out_of_room(room, conn)
        subs = self._subs_of.pop(conn)
        for sub in subs:
            _discard(self._topics, sub, conn)
            self._count_topic(sub[0], -1)
        self._subscription_count -= len(subs)
        self._all.discard(conn)
        if rooms and self.on_rooms is not None:
            self.on_rooms(conn)

    def __contains__(self, conn: object) -> bool:
        return conn in self._all

    def __len__(self) -> int:
        return len(self._all)

    @property
    def subscription_count(self) -> int:
        return self._subscription_count

    @property
    def room_count(self) -> int:
        """Rooms with at least one connection here."""
        return len(self._rooms)

    def rooms_of(self, conn: C) -> frozenset[str]:
        return frozenset(self._rooms_of.get(conn, ()))

    def subscriptions_of(self, conn: C) -> frozenset[Subscription]:
        return frozenset(self._subs_of.get(conn, ()))

    def join(self, conn: C, room: str) -> bool:
        """Add conn to room; False when it already was in it."""
        rooms = self._rooms_of[conn]
        if room in rooms:
            return False
        rooms.add(room)
        members = self._rooms.get(room)
        if members is None:
            members = self._rooms[room] = set()
            if self.on_wanted is not None:
                self.on_wanted(("room", room), True)
        members.add(conn)
        if self.on_rooms is not None:
            self.on_rooms(conn)
        return True

    def leave(self, conn: C, room: str) -> bool:
        rooms = self._rooms_of[conn]
        if room not in rooms:
            return False
        rooms.discard(room)
        self._out_of_room(room, conn)
        if self.on_rooms is not None:
            self.on_rooms(conn)
        return True

    def subscribe(self, conn: C, topic: str, type_: str) -> bool:
        """Subscribe conn to (topic, type); False when it already was."""
        subs = self._subs_of[conn]
        key = (topic, type_)
        if key in subs:
            return False
        subs.add(key)
        self._topics.setdefault(key, set()).add(conn)
        self._subscription_count += 1
        self._count_topic(topic, 1)
        return True

    def unsubscribe(self, conn: C, topic: str, type_: str) -> bool:
        subs = self._subs_of[conn]
        key = (topic, type_)
        if key not in subs:
            return False
        subs.discard(key)
        _discard(self._topics, key, conn)
        self._subscription_count -= 1
        self._count_topic(topic, -1)
        return True

    def _out_of_room(self, room: str, conn: C) -> None:
        _discard(self._rooms, room, conn)
        if room not in self._rooms and self.on_wanted is not None:
            self.on_wanted(("room", room), False)

    def _count_topic(self, topic: str, change: int) -> None:
        count = self._per_topic.get(topic, 0) + change
        if count:
            self._per_topic[topic] = count
        else:
            del self._per_topic[topic]
        if self.on_wanted is not None and count == (1 if change > 0 else 0):
            self.on_wanted(("topic", topic), count > 0)

    # ---- matching --------------------------------------------------------

    def wants_topic(self, conn: C, topic: str, type_: str | None) -> bool:
        subs = self._subs_of.get(conn)
        if not subs:
            return False
        return (topic, ANY_TYPE) in subs or (type_ is not None and (topic, type_) in subs)

    def matches(self, conn: C, topic: str | None, type_: str | None, room: str | None) -> bool:
        """Whether a message addressed this way goes to conn (same rules as recipients)."""
        if conn not in self._all:
            return False
        if room is not None and room not in self._rooms_of[conn]:
            return False
        if topic is not None:
            return self.wants_topic(conn, topic, type_)
        return True

    def recipients(self, topic: str | None, type_: str | None, room: str | None) -> Collection[C]:
        """Every connection the message goes to, each once.

        The returned collection may be one of the hub's own sets: iterate it before
        changing the hub (the fan-out defers closes until after its loop).
        """
        if room is not None:
            members = self._rooms.get(room)
            if not members:
                return ()
            if topic is None:
                return members
            return [c for c in members if self.wants_topic(c, topic, type_)]
        if topic is not None:
            star = self._topics.get((topic, ANY_TYPE))
            exact = self._topics.get((topic, type_)) if type_ not in (None, ANY_TYPE) else None
            if not exact:
                return star or ()
            if not star:
                return exact
            # A connection subscribed to both (topic, type) and (topic, "*") gets it once.
            return [*exact, *(c for c in star if c not in exact)]
        return self._all


def _discard(index: dict[K, set[C]], key: K, conn: C) -> None:
    members = index.get(key)
    if members is None:
        return
    members.discard(conn)
    if not members:
        del index[key]
