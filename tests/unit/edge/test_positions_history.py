"""Position vectors and the recovery history."""

from __future__ import annotations

import zlib

import orjson
import pytest

from roomcast_core.wire import Message
from roomcast_edge.domain.frames import deflate_text_frame, frame_payload, text_frame
from roomcast_edge.domain.history import History
from roomcast_edge.domain.positions import PositionError, format_vector, parse_vector
from roomcast_edge.domain.publication import Publication, make_publication


def test_vectors_round_trip() -> None:
    assert parse_vector("0:41, 1:-1,2:17") == {0: 41, 1: -1, 2: 17}
    assert parse_vector("") == {}
    assert format_vector({2: 17, 0: 41, 1: -1}) == "0:41,1:-1,2:17"


@pytest.mark.parametrize("bad", ["0", "a:1", "0:x", "0:-2", "-1:0", "0:1,0:2", "0:1:2"])
def test_bad_vectors_are_refused(bad: str) -> None:
    with pytest.raises(PositionError):
        parse_vector(bad)


def _pub(partition: int, offset: int, timestamp: float = 1000.0) -> Publication:
    return Publication(partition, offset, None, None, None, b"f%d" % offset, timestamp)


def test_history_replays_after_since_in_order() -> None:
    history = History(size=10, max_age=60)
    history.start(0, 0)
    history.start(1, 0)
    for offset in range(5):
        history.append(_pub(0, offset))
    history.append(_pub(1, 0))
    assert history.positions() == {0: 4, 1: 0}
    assert [p.offset for p in history.after({0: 2, 1: 0})] == [3, 4]
    assert [(p.partition, p.offset) for p in history.after({})] == [
        (0, 0),
        (0, 1),
        (0, 2),
        (0, 3),
        (0, 4),
        (1, 0),
    ]
    assert history.covers({0: -1, 1: -1})
    assert history.covers({0: 4})


def test_history_bounded_by_count_stops_covering() -> None:
    history = History(size=3, max_age=60)
    history.start(0, 0)
    for offset in range(6):
        history.append(_pub(0, offset))
    assert [p.offset for p in history.after({0: -1})] == [3, 4, 5]
    assert not history.covers({0: 1})  # 2 is gone
    assert history.covers({0: 2})
    assert not history.covers({0: 2, 7: 0})  # unknown partition


def test_history_bounded_by_age() -> None:
    history = History(size=100, max_age=10)
    history.start(0, 0)
    history.append(_pub(0, 0, timestamp=100))
    history.append(_pub(0, 1, timestamp=105))
    history.expire(now=112)
    assert [p.offset for p in history.after({0: -1})] == [1]
    assert not history.covers({0: -1})
    assert history.covers({0: 0})
    history.expire(now=200)
    assert history.covers({0: 1})  # nothing missed since the last one
    assert not history.covers({0: 0})


def test_skipped_records_advance_the_position() -> None:
    history = History(size=10, max_age=60)
    history.start(0, 5)
    assert history.positions() == {0: 4}
    history.advance(0, 5)
    history.append(_pub(0, 6))
    assert history.positions() == {0: 6}
    assert history.covers({0: 4})
    assert [p.offset for p in history.after({0: 4})] == [6]


def test_publication_frame_is_the_push_json() -> None:
    msg = Message("order", "event", "1001", {"a": 1}, "m1", "2025-08-06T14:20:00.000Z")
    pub = make_publication(msg, 2, 17, 1.0)
    body = orjson.dumps(
        {
            "topic": "order",
            "type": "event",
            "room": "1001",
            "payload": {"a": 1},
            "meta": {
                "receive_time": "2025-08-06T14:20:00.000Z",
                "message_id": "m1",
                "position": "2:17",
            },
        }
    )
    assert pub.frame == text_frame(body)
    assert pub.frame[:4] == bytes((0x81, 126)) + len(body).to_bytes(2, "big")


def test_frame_lengths() -> None:
    assert text_frame(b"x" * 200)[:4] == bytes((0x81, 126, 0, 200))
    big = text_frame(b"x" * 70_000)
    assert big[:2] == bytes((0x81, 127))
    assert int.from_bytes(big[2:10], "big") == 70_000


def test_deflate_frame_inflates_without_earlier_context() -> None:
    payload = b'{"payload":"' + b"abc" * 500 + b'"}'
    frame = deflate_text_frame(payload, 15)
    assert frame[0] == 0xC1  # FIN, RSV1 (compressed), text
    assert len(frame) < len(payload)
    # two messages inflated by one long-lived client context, as browsers do
    inflater = zlib.decompressobj(-15)
    for _ in range(2):
        assert inflater.decompress(frame_payload(frame) + b"\x00\x00\xff\xff") == payload
    assert frame_payload(text_frame(payload)) == payload


def test_a_record_seen_twice_is_kept_once() -> None:
    history = History(size=10, max_age=60)
    history.start(0, 0)
    assert history.append(_pub(0, 0))
    assert history.append(_pub(0, 1))
    assert not history.append(_pub(0, 1))
    assert not history.append(_pub(0, 0))
    assert [p.offset for p in history.after({})] == [0, 1]
