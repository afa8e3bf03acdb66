"""The ledger itself: it must catch every loss, duplicate and unentitled delivery."""

from __future__ import annotations

from typing import Any

from tests.robustness.ledger import Entitlement, Ledger, Sent


def _push(message_id: str, position: str) -> dict[str, Any]:
    return {"payload": 1, "meta": {"message_id": message_id, "position": position}}


def _ledger() -> Ledger:
    ledger = Ledger()
    ledger.acknowledged(Sent("old", "0:4", room="a"))  # before the clients connected
    ledger.acknowledged(Sent("room-a", "0:5", room="a"))
    ledger.acknowledged(Sent("room-b", "0:6", room="b"))
    ledger.acknowledged(Sent("order-event", "1:0", topic="order", type="event"))
    ledger.acknowledged(Sent("order-notype", "1:1", topic="order"))
    ledger.acknowledged(Sent("all", "2:0"))
    ledger.acknowledged(Sent("a-and-order", "0:7", topic="order", type="x", room="a"))
    return ledger


HELLO = {"action": "connected", "rooms": ["a"], "position": "0:4,1:-1,2:-1"}


def test_delivery_rules_of_the_contract() -> None:
    room_a = Entitlement(frozenset({"a"}))
    assert room_a.wants(None, None, "a")
    assert not room_a.wants(None, None, "b")
    assert room_a.wants(None, None, None)  # broadcast
    assert not room_a.wants("order", "event", None)
    assert not room_a.wants("order", "x", "a")  # room and topic must both match
    star = Entitlement(frozenset({"a"}), frozenset({("order", "*")}))
    assert star.wants("order", None, None)
    assert star.wants("order", "x", "a")
    typed = Entitlement(frozenset(), frozenset({("order", "event")}))
    assert typed.wants("order", "event", None)
    assert not typed.wants("order", None, None)  # no type matches only *
    assert not typed.wants("order", "other", None)


def test_a_complete_delivery_is_ok() -> None:
    ledger = _ledger()
    client = ledger.client("c", HELLO, [("order", "*")])
    for message_id, position in [
        ("room-a", "0:5"),
        ("order-event", "1:0"),
        ("order-notype", "1:1"),
        ("all", "2:0"),
        ("a-and-order", "0:7"),
    ]:
        client.push(_push(message_id, position))
    report = ledger.check()
    assert report.ok, report.text()
    assert report.clients[0].expected == 5
    assert "1/1 clients ok" in report.text()


def test_loss_duplicate_unentitled_and_unknown_are_each_caught() -> None:
    ledger = _ledger()
    lossy = ledger.client("lossy", HELLO)
    lossy.push(_push("room-a", "0:5"))
    dup = ledger.client("dup", HELLO)
    for message_id, position in [("room-a", "0:5"), ("all", "2:0"), ("all", "2:0")]:
        dup.push(_push(message_id, position))
    leak = ledger.client("leak", HELLO)
    for message_id, position in [("room-a", "0:5"), ("all", "2:0"), ("room-b", "0:6")]:
        leak.push(_push(message_id, position))
    ghost = ledger.client("ghost", HELLO)
    for message_id, position in [("room-a", "0:5"), ("all", "2:0"), ("never-sent", "0:9")]:
        ghost.push(_push(message_id, position))
    report = ledger.check()
    assert not report.ok
    by_name = {c.name: c for c in report.clients}
    assert by_name["lossy"].missing == ["all"]
    assert by_name["dup"].duplicates == ["all"]
    assert by_name["leak"].unentitled == ["room-b"]
    assert by_name["ghost"].unknown == ["never-sent"]
    assert all(not c.ok for c in report.clients)
    assert "FAIL" in report.text()


def test_recovered_false_excuses_losses_but_not_duplicates() -> None:
    ledger = _ledger()
    client = ledger.client("c", HELLO)
    client.connected({"action": "connected", "recovered": False})
    client.push(_push("all", "2:0"))
    assert ledger.check().ok
    client.push(_push("all", "2:0"))
    assert not ledger.check().ok


def test_a_departed_client_is_held_to_what_it_reached_and_uncertain_ones_are_free() -> None:
    ledger = _ledger()
    ledger.maybe("timed-out")
    client = ledger.client("c", HELLO)
    client.departed = True
    client.push(_push("timed-out", "0:8"))
    client.push(_push("a-and-order", "0:9"))  # not entitled: a leak even when departing
    report = ledger.check()
    assert report.clients[0].unentitled == ["a-and-order"]
    assert report.clients[0].missing == ["room-a"]  # 0:5 < 0:9 reached: a gap
    assert report.clients[0].unknown == []
    assert report.uncertain == 1


def test_the_vector_a_client_keeps_advances_its_start_by_what_it_got() -> None:
    ledger = _ledger()
    client = ledger.client("c", HELLO)
    client.push(_push("room-a", "0:5"))
    client.push(_push("all", "2:0"))
    assert client.vector() == "0:5,1:-1,2:0"
    assert ledger.expected(client) == ["room-a", "all"]
