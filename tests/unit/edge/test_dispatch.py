"""The pure dispatcher: plain sessions, no sockets, no loop."""

from __future__ import annotations

import orjson

from roomcast_core.tokens import TokenClaims
from roomcast_core.wire import Message
from roomcast_edge.domain.dispatch import (
    ABUSE_STRIKES,
    MAX_UNKNOWN_PARTITIONS,
    ConnectRequest,
    Dispatcher,
    Limits,
)
from roomcast_edge.domain.frames import frame_payload
from roomcast_edge.domain.history import History
from roomcast_edge.domain.hub import Hub
from roomcast_edge.domain.publication import make_publication
from roomcast_edge.domain.ratelimit import TokenBucket
from roomcast_edge.domain.replay import ReplayJob
from roomcast_edge.domain.session import Session


def _session(rooms: tuple[str, ...] | None = None, rate: float = 100) -> Session:
    return Session(TokenClaims("u", "d", "j", 0, 2**31, rooms=rooms), TokenBucket(rate, rate, 0))


def _dispatcher(max_replay: int = 1000) -> tuple[Dispatcher[Session], History]:
    history = History(1000, 1e9)
    history.start(0, 0)
    limits = Limits(max_rooms=2, max_subscriptions=4, max_replay=max_replay)
    return Dispatcher(Hub(), history, limits), history


def _add(dispatcher: Dispatcher[Session], offset: int, room: str | None, topic: str | None) -> None:
    msg = Message(topic, "t" if topic else None, room, {"o": offset}, f"m{offset}", "x")
    publication = make_publication(msg, 0, offset, 1e12)
    assert dispatcher.history.append(publication)
    dispatcher.index.add(publication)


def _replayed(dispatcher: Dispatcher[Session], jobs: list[ReplayJob]) -> list[int]:
    """The offsets these jobs replay, read to the end."""
    frames: list[bytes] = []
    for job in jobs:
        assert job.read(dispatcher.index, frames, 2**40, 2**40)[2]
    return [orjson.loads(frame_payload(f))["payload"]["o"] for f in frames]


def test_connect_registers_and_replays_what_matches() -> None:
    dispatcher, _ = _dispatcher()
    for offset, room in enumerate(["a", "b", "a", None]):
        _add(dispatcher, offset, room, None)
    session = _session()
    opened = dispatcher.open(session, ConnectRequest(["a"], [], [], {0: 0}), now=0)
    hello = orjson.loads(opened.hello)
    assert hello["rooms"] == ["a"]
    assert hello["recovered"] is True
    assert _replayed(dispatcher, opened.replay) == [2, 3]
    assert session in dispatcher.hub


def test_requests_get_replies_and_change_the_hub() -> None:
    dispatcher, _ = _dispatcher()
    _add(dispatcher, 0, "r", None)
    _add(dispatcher, 1, "s", None)
    session = _session(rooms=("r",))
    dispatcher.open(session, ConnectRequest([], [], [], None), now=0)
    joined = dispatcher.handle(
        session, b'{"request_id":"1","action":"join","params":{"room":"r","since":"0:-1"}}', 1, 0
    )
    assert joined.outcome == "ok"
    assert joined.recovered is True
    assert joined.changed
    assert _replayed(dispatcher, joined.replay) == [0]
    assert dispatcher.hub.rooms_of(session) == {"r"}
    refused = dispatcher.handle(
        session, b'{"request_id":"2","action":"join","params":{"room":"s"}}', 1, 0
    )
    assert refused.outcome == "fail"
    assert refused.reply is not None
    assert orjson.loads(refused.reply)["status"] == "fail"


def test_a_client_refused_again_and_again_is_to_be_closed() -> None:
    dispatcher, _ = _dispatcher()
    session = _session(rate=1)
    dispatcher.open(session, ConnectRequest([], [], [], None), now=0)
    ping = b'{"request_id":"p","action":"ping"}'
    assert dispatcher.handle(session, ping, 0, 0).outcome == "ok"
    answers = [dispatcher.handle(session, ping, 0, 0) for _ in range(ABUSE_STRIKES)]
    assert all(a.outcome == "rate_limited" for a in answers)
    assert all(a.reply is not None for a in answers[:-1])
    assert answers[-1].reply is None


def test_a_since_naming_bogus_partitions_leaves_almost_nothing_behind() -> None:
    dispatcher, _ = _dispatcher()
    _add(dispatcher, 0, None, None)
    session = _session()
    since = {0: 7, **{p: 3 for p in range(1, 4001)}}  # 4000 partitions this edge does not read
    opened = dispatcher.open(session, ConnectRequest([], [], [], since), now=0)
    assert opened.recovered is False
    assert opened.unknown_partitions
    assert session.skip is not None
    assert len(session.skip) == 1 + MAX_UNKNOWN_PARTITIONS
    assert session.skip[0] == 7  # ahead of this edge: not pushed again
    dispatcher.forget_unknown_partitions(session)
    assert session.skip == {0: 7}
    assert not session.already_has(0, 8)
    assert session.skip is None
