"""Presence rules of one edge, without I/O: who is a member, and what changed.

A connection is a member of every room it is in. The edge tells the shared store
only what changed since the last flush: `Ledger` keeps the rooms each connection is
known to be in and turns the rooms it is in now into additions and removals, and
`Pending` keeps those changes until the next flush, the last change per
(room, connection) winning. Both kinds of change are idempotent in the store, so
the last one is all that matters, and a batch that failed is simply sent again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from roomcast_core.presence_store import Change
from roomcast_core.tokens import TokenClaims


class Member(Protocol):
    """What presence needs of a session."""

    @property
    def id(self) -> str: ...

    @property
    def claims(self) -> TokenClaims: ...


@dataclass(frozen=True, slots=True)
class PresenceQuery:
    """A `presence` request allowed by the dispatcher, waiting for the store's answer."""

    request_id: Any
    room: str


class RoomPresence(Protocol):
    """The node's view of presence: told each connection's rooms after every change."""

    def update(self, member: Member, rooms: frozenset[str]) -> None: ...

    def query(self, room: str) -> Any:
        """An awaitable future of the room's presence object, or of an exception."""


def member_json(member: Member, joined_at: int) -> bytes:
    claims = member.claims
    return orjson.dumps(
        {
            "connection_id": member.id,
            "user_id": claims.sub,
            "device_id": claims.did,
            "joined_at": joined_at,
        }
    )


@dataclass(slots=True)
class Held:
    """One connection's membership as the store knows it (or will after the flush)."""

    user_id: str
    rooms: dict[str, bytes]  # room -> member JSON


class Ledger:
    """The rooms of every local connection, to diff against and to write again whole."""

    def __init__(self) -> None:
        self._held: dict[str, Held] = {}
        self.count = 0  # memberships held

    def diff(self, member: Member, rooms: frozenset[str], now_ms: int) -> list[Change]:
        """The changes that take `member` from the rooms it was in to `rooms`."""
        held = self._held.get(member.id)
        added = [r for r in rooms if held is None or r not in held.rooms]
        # Encoded before anything changes: a member that cannot be encoded leaves the
        # ledger as it was. One body serves every room it joins now.
        body = member_json(member, now_ms) if added else b""
        if held is None:
            if not rooms:
                return []
            held = self._held[member.id] = Held(member.claims.sub, {})
        changes: list[Change] = []
        for room in [r for r in held.rooms if r not in rooms]:
            del held.rooms[room]
            self.count -= 1
            changes.append(Change(room, member.id, held.user_id, None))
        for room in added:
            held.rooms[room] = body
            self.count += 1
            changes.append(Change(room, member.id, held.user_id, body))
        if not held.rooms:
            del self._held[member.id]
        return changes

    def everything(self) -> Iterator[Change]:
        """Every membership held, as additions (after the store lost this edge's)."""
        for connection_id, held in self._held.items():
            for room, body in held.rooms.items():
                yield Change(room, connection_id, held.user_id, body)


class Pending:
    """Changes waiting for the next flush, at most one per (room, connection)."""

    def __init__(self) -> None:
        self._changes: dict[tuple[str, str], Change] = {}

    def __len__(self) -> int:
        return len(self._changes)

    def add(self, changes: Iterable[Change]) -> None:
        for change in changes:
            self._changes[(change.room, change.connection_id)] = change

    def take(self) -> list[Change]:
        changes = list(self._changes.values())
        self._changes.clear()
        return changes

    def restore(self, changes: Iterable[Change]) -> None:
        """Put back a batch that failed, under any newer change of the same member."""
        newer: Mapping[tuple[str, str], Change] = self._changes
        self._changes = {(c.room, c.connection_id): c for c in changes}
        self._changes.update(newer)
