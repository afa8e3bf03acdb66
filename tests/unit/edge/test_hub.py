"""Hub indexes: each delivery rule, no duplicates, cleanup on remove."""

from __future__ import annotations

from roomcast_edge.domain.hub import Hub


class Conn:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


def _hub(*names: str) -> tuple[Hub[Conn], dict[str, Conn]]:
    hub: Hub[Conn] = Hub()
    conns = {n: Conn(n) for n in names}
    for c in conns.values():
        hub.add(c)
    return hub, conns


def _names(conns: object) -> list[str]:
    assert not isinstance(conns, str)
    return sorted(c.name for c in conns)  # type: ignore[attr-defined]


def test_room_only() -> None:
    hub, c = _hub("a", "b", "c")
    hub.join(c["a"], "1001")
    hub.join(c["b"], "2002")
    assert _names(hub.recipients(None, None, "1001")) == ["a"]
    assert _names(hub.recipients(None, "score", "1001")) == ["a"]
    assert _names(hub.recipients(None, None, "9")) == []


def test_topic_type_and_star_without_duplicates() -> None:
    hub, c = _hub("exact", "star", "other", "both")
    hub.subscribe(c["exact"], "order", "event")
    hub.subscribe(c["star"], "order", "*")
    hub.subscribe(c["other"], "order", "other")
    hub.subscribe(c["both"], "order", "event")
    hub.subscribe(c["both"], "order", "*")
    got = list(hub.recipients("order", "event", None))
    assert sorted(x.name for x in got) == ["both", "exact", "star"]
    assert len(got) == len(set(got))
    assert _names(hub.recipients("order", None, None)) == ["both", "star"]
    assert _names(hub.recipients("order", "other", None)) == ["both", "other", "star"]
    assert _names(hub.recipients("nothing", "event", None)) == []


def test_room_and_topic_is_an_intersection() -> None:
    hub, c = _hub("match", "room_only", "topic_only")
    hub.join(c["match"], "1")
    hub.subscribe(c["match"], "q", "*")
    hub.join(c["room_only"], "1")
    hub.subscribe(c["topic_only"], "q", "*")
    assert _names(hub.recipients("q", "tick", "1")) == ["match"]
    assert hub.matches(c["match"], "q", "tick", "1")
    assert not hub.matches(c["room_only"], "q", "tick", "1")
    assert not hub.matches(c["topic_only"], "q", "tick", "1")


def test_broadcast_reaches_all() -> None:
    hub, _ = _hub("a", "b")
    assert _names(hub.recipients(None, None, None)) == ["a", "b"]
    assert _names(hub.recipients(None, "score", None)) == ["a", "b"]


def test_remove_cleans_every_index() -> None:
    hub, c = _hub("a", "b")
    hub.join(c["a"], "1")
    hub.subscribe(c["a"], "t", "*")
    hub.subscribe(c["a"], "u", "x")
    assert hub.subscription_count == 2
    hub.remove(c["a"])
    hub.remove(c["a"])  # twice is harmless
    assert hub.subscription_count == 0
    assert _names(hub.recipients(None, None, "1")) == []
    assert _names(hub.recipients("t", "x", None)) == []
    assert _names(hub.recipients(None, None, None)) == ["b"]
    assert len(hub) == 1
    assert not hub.matches(c["a"], None, None, None)


def test_join_subscribe_are_idempotent_and_reversible() -> None:
    hub, c = _hub("a")
    assert hub.join(c["a"], "1")
    assert not hub.join(c["a"], "1")
    assert hub.leave(c["a"], "1")
    assert not hub.leave(c["a"], "1")
    assert hub.subscribe(c["a"], "t", "*")
    assert not hub.subscribe(c["a"], "t", "*")
    assert hub.subscription_count == 1
    assert hub.unsubscribe(c["a"], "t", "*")
    assert not hub.unsubscribe(c["a"], "t", "*")
    assert hub.subscription_count == 0
    assert hub.rooms_of(c["a"]) == frozenset()


def test_room_count_is_rooms_with_a_connection() -> None:
    hub, c = _hub("a", "b")
    hub.join(c["a"], "1")
    hub.join(c["b"], "1")
    hub.join(c["b"], "2")
    assert hub.room_count == 2
    hub.leave(c["b"], "2")
    assert hub.room_count == 1
    hub.remove(c["a"])
    assert hub.room_count == 1
    hub.remove(c["b"])
    assert hub.room_count == 0
