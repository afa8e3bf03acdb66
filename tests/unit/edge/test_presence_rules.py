"""Presence rules without Redis: the ledger's diffs, pending changes, the dispatcher's check."""

from __future__ import annotations

import orjson
import pytest

from roomcast_core.presence_store import Change
from roomcast_core.tokens import TokenClaims
from roomcast_edge.domain.dispatch import ConnectRequest, Dispatcher, Limits
from roomcast_edge.domain.history import History
from roomcast_edge.domain.hub import Hub
from roomcast_edge.domain.presence import Ledger, Pending
from roomcast_edge.domain.ratelimit import TokenBucket
from roomcast_edge.domain.session import Session


def _session(user: str = "u") -> Session:
    return Session(TokenClaims(user, "d", "j", 0, 2**31), TokenBucket(100, 100, 0))


def test_ledger_turns_rooms_into_additions_and_removals() -> None:
    ledger, session = Ledger(), _session("alice")
    added = ledger.diff(session, frozenset({"r1", "r2"}), 1000)
    assert sorted((c.room, c.member is not None) for c in added) == [("r1", True), ("r2", True)]
    assert orjson.loads(added[0].member or b"") == {
        "connection_id": session.id,
        "user_id": "alice",
        "device_id": "d",
        "joined_at": 1000,
    }
    assert ledger.count == 2
    assert ledger.diff(session, frozenset({"r1", "r2"}), 2000) == []
    moved = ledger.diff(session, frozenset({"r2", "r3"}), 3000)
    assert sorted((c.room, c.member is None) for c in moved) == [("r1", True), ("r3", False)]
    assert sorted(c.room for c in ledger.everything()) == ["r2", "r3"]
    gone = ledger.diff(session, frozenset(), 4000)
    assert sorted(c.room for c in gone) == ["r2", "r3"]
    assert all(c.member is None for c in gone)
    assert ledger.count == 0
    assert list(ledger.everything()) == []


def test_a_member_that_cannot_be_encoded_leaves_the_ledger_as_it_was() -> None:
    ledger, good = Ledger(), _session("alice")
    ledger.diff(good, frozenset({"r1"}), 1000)
    # Claims that verify no longer hold such text; the ledger stays whole regardless.
    bad = _session("\udcff-user")
    with pytest.raises(orjson.JSONEncodeError):
        ledger.diff(bad, frozenset({"r1", "r2"}), 2000)
    assert ledger.count == 1
    assert [(c.room, c.connection_id) for c in ledger.everything()] == [("r1", good.id)]
    assert ledger.diff(bad, frozenset(), 3000) == []  # nothing to take back


def test_pending_keeps_the_last_change_per_member_and_restores_under_newer() -> None:
    pending = Pending()
    add = Change("r", "c1", "u", b"{}")
    remove = Change("r", "c1", "u", None)
    pending.add([add, remove, Change("r", "c2", "u", b"{}")])
    assert len(pending) == 2
    batch = pending.take()
    assert remove in batch
    assert len(pending) == 0
    pending.add([add])  # newer than the batch that is about to fail
    pending.restore(batch)
    after = pending.take()
    assert add in after
    assert remove not in after
    assert len(after) == 2


def test_presence_is_only_for_rooms_the_connection_is_in() -> None:
    history = History(10, 1e9)
    dispatcher: Dispatcher[Session] = Dispatcher(Hub(), history, Limits(2, 2))
    session = _session()
    dispatcher.open(session, ConnectRequest(["r1"], [], [], None), 0)
    inside = dispatcher.handle(
        session, b'{"request_id": 1, "action": "presence", "params": {"room": "r1"}}', 0, 0
    )
    assert inside.reply is None
    assert inside.presence is not None
    assert (inside.presence.request_id, inside.presence.room) == (1, "r1")
    outside = dispatcher.handle(
        session, b'{"request_id": 2, "action": "presence", "params": {"room": "r2"}}', 1, 0
    )
    assert outside.presence is None
    assert outside.outcome == "fail"
    assert orjson.loads(outside.reply or b"")["status"] == "fail"


def test_the_hub_tells_of_every_change_of_rooms() -> None:
    hub: Hub[Session] = Hub()
    told: list[tuple[str, frozenset[str]]] = []
    hub.on_rooms = lambda s: told.append((s.id, hub.rooms_of(s)))
    session = _session()
    hub.add(session)
    hub.subscribe(session, "topic", "*")  # not a room: nothing to tell
    assert hub.join(session, "r1")
    assert not hub.join(session, "r1")  # no change, no call
    assert hub.join(session, "r2")
    assert hub.leave(session, "r1")
    hub.remove(session)
    assert told == [
        (session.id, frozenset({"r1"})),
        (session.id, frozenset({"r1", "r2"})),
        (session.id, frozenset({"r2"})),
        (session.id, frozenset()),
    ]
    roomless = _session()
    hub.add(roomless)
    hub.remove(roomless)  # was in no room: nothing to tell
    assert len(told) == 4
