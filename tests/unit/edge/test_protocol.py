"""Request parsing, replies and connect parameters."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from functools import partial

import orjson
import pytest

from roomcast_edge.domain import protocol
from roomcast_edge.domain.ratelimit import TokenBucket


def test_parse_subscribe_defaults_type_to_star() -> None:
    req = protocol.parse_request(
        b'{"request_id":"r1","action":"subscribe","params":{"topic":"order"}}'
    )
    assert (req.request_id, req.action, req.topic, req.type, req.since) == (
        "r1",
        "subscribe",
        "order",
        "*",
        None,
    )
    req = protocol.parse_request('{"action":"join","params":{"room":1001,"since":"0:4"}}')
    assert (req.request_id, req.room, req.since) == ("", "1001", {0: 4})


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ("{", "invalid JSON"),
        ("5", "JSON object"),
        ('{"action":"x"}', "unknown action"),
        ('{"params":{}}', "missing action"),
        ('{"action":"subscribe","params":{"topic":" "}}', "missing or empty topic"),
        ('{"action":"subscribe","params":{"topic":true}}', "missing or empty topic"),
        ('{"action":"subscribe","params":{"topic":"t","type":3.5}}', "type"),
        ('{"action":"leave","params":{}}', "missing or empty room"),
        ('{"action":"join","params":[]}', "params"),
        ('{"action":"join","params":{"room":"1","since":5}}', "since"),
        ('{"action":"subscribe","params":{"topic":"' + "x" * 300 + '"}}', "longer"),
    ],
)
def test_bad_requests(frame: str, message: str) -> None:
    with pytest.raises(protocol.RequestError) as caught:
        protocol.parse_request(frame)
    assert message in str(caught.value)


def test_request_id_is_echoed_in_errors() -> None:
    with pytest.raises(protocol.RequestError) as caught:
        protocol.parse_request('{"request_id":"r9","action":"subscribe","params":{}}')
    assert (caught.value.request_id, caught.value.action) == ("r9", "subscribe")


def test_reply_shape() -> None:
    body = orjson.loads(protocol.reply("r1", "subscribe"))
    assert set(body) == {"request_id", "action", "status", "error_message", "timestamp"}
    assert body["status"] == "ok"
    failed = orjson.loads(protocol.reply("r1", "join", "nope", {"recovered": False}))
    assert (failed["status"], failed["error_message"], failed["recovered"]) == (
        "fail",
        "nope",
        False,
    )


def test_room_ids_are_trimmed_deduplicated_and_cut() -> None:
    assert protocol.parse_room_ids(" 1001 ,2002,1001,,3003, 3003", 2) == (
        ["1001", "2002"],
        [("3003", protocol.TOO_MANY_ROOMS)],
    )
    assert protocol.parse_room_ids(None, 2) == ([], [])
    long = "r" * (protocol.MAX_NAME_LENGTH + 1)
    assert protocol.parse_room_ids(f"a,{long}", 2) == (
        ["a"],
        [(long[: protocol.MAX_NAME_LENGTH], protocol.INVALID)],
    )


def test_cut_rooms_are_listed_up_to_the_cap() -> None:
    rooms, refused = protocol.parse_room_ids(",".join(f"r{n}" for n in range(1000)), 2)
    assert rooms == ["r0", "r1"]
    assert len(refused) == protocol.MAX_REFUSED_LISTED
    assert refused[0] == ("r2", protocol.TOO_MANY_ROOMS)


def test_topic_specs() -> None:
    specs, bad = protocol.parse_topic_specs(
        "order:event, quotes:*,news,:x,order:event,a:b:c", limit=64
    )
    assert [(t, ty) for _, t, ty in specs] == [
        ("order", "event"),
        ("quotes", "*"),
        ("news", "*"),
        ("a:b", "c"),
    ]
    assert bad == [(":x", protocol.INVALID)]


def test_topic_specs_past_the_limit_are_refused() -> None:
    specs, refused = protocol.parse_topic_specs("a,b,a,c,:x,d", limit=2)
    assert [t for _, t, _ in specs] == ["a", "b"]
    assert refused == [
        ("c", protocol.TOO_MANY_SUBSCRIPTIONS),
        (":x", protocol.INVALID),
        ("d", protocol.TOO_MANY_SUBSCRIPTIONS),
    ]


def _seconds(work: Callable[[], object], repeat: int = 9) -> float:
    """Best of `repeat` runs in CPU time, without the cyclic GC (its pauses follow the
    heap, not the work)."""
    best = float("inf")
    gc.disable()
    try:
        for _ in range(repeat):
            started = time.process_time()
            work()
            best = min(best, time.process_time() - started)
    finally:
        gc.enable()
    return best


def _names(count: int) -> str:
    return ",".join(f"t{i}:e" for i in range(count))


def test_connect_lists_are_cut_before_they_cost_anything() -> None:
    small, large = _names(1_000), _names(64_000)
    for parse in (
        partial(protocol.parse_topic_specs, limit=64),
        partial(protocol.parse_room_ids, max_rooms=2),
    ):
        ratio = _seconds(partial(parse, large)) / _seconds(partial(parse, small))
        assert ratio < 4, ratio  # reading stops at the limit: 64x the text, same work
    specs, refused = protocol.parse_topic_specs(large, 64)
    assert len(specs) == 64
    assert len(refused) == protocol.MAX_REFUSED_LISTED


def test_topic_lists_are_deduplicated_in_linear_time() -> None:
    # Distinct names, none cut: the de-duplication used to compare each with all before.
    small, large = _names(8_000), _names(64_000)
    parse = partial(protocol.parse_topic_specs, limit=1_000_000)
    ratio = _seconds(partial(parse, large)) / _seconds(partial(parse, small))
    assert ratio < 30, ratio  # linear is 8x (plus allocation noise); quadratic is 64x


def test_claims() -> None:
    assert protocol.allowed(None, "x")
    assert protocol.allowed(("x",), "x")
    assert not protocol.allowed(("x",), "y")
    assert not protocol.allowed((), "y")
    assert protocol.allowed(("*",), "y")


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=1, burst=2, now=0)
    assert bucket.take(0)
    assert bucket.take(0)
    assert not bucket.take(0)
    assert bucket.take(1.0)
    assert not bucket.take(1.0)
