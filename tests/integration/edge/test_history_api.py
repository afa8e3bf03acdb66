"""GET /v1/history: paged forward through `next`, from the bus's own log (Kafka, or the
Redis streams) past a tiny in-memory history."""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import BUSES, Infra, infra_on
from tests.integration.edge.conftest import (
    Publisher,
    SharedEdge,
    bus_publisher,
    connect,
    http_get,
    message,
    metric,
    module_edge,
    pushes_until,
    token,
)

HISTORY = "40"  # per partition: nearly everything below must come from the bus


@pytest.fixture(scope="module", params=BUSES)
def infra(request: pytest.FixtureRequest) -> Infra:
    """Every test here runs on Kafka and on Redis Streams."""
    return infra_on(request)


@pytest.fixture(scope="module")
def edge(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedEdge]:
    with module_edge(infra, tmp_path_factory, ROOMCAST_EDGE__HISTORY_SIZE=HISTORY) as shared:
        yield shared


def history(edge: SharedEdge, tok: str | None = None, **query: str) -> tuple[int, Any]:
    params = dict(query)
    if tok is not None:
        params["token"] = tok
    status, body = http_get(edge.edge.url + "/v1/history?" + urllib.parse.urlencode(params))
    return status, json.loads(body)


def page_through(edge: SharedEdge, tok: str, limit: int, **query: str) -> list[dict[str, Any]]:
    """Every message from `query`'s start on, page after page through `next`."""
    got: list[dict[str, Any]] = []
    for _ in range(1000):
        status, body = history(edge, tok, limit=str(limit), **query)
        assert status == 200, body
        assert len(body["messages"]) <= limit
        got.extend(body["messages"])
        if body["complete"]:
            return got
        query = {**{k: v for k, v in query.items() if k != "from_ms"}, "since": body["next"]}
    pytest.fail("history never completed")


def by_partition(pushes: list[dict[str, Any]]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for push in pushes:
        partition, _ = (int(x) for x in push["meta"]["position"].split(":"))
        out.setdefault(partition, []).append(push["meta"]["message_id"])
    return out


async def test_paging_forward_equals_what_a_live_client_received(
    edge: SharedEdge, infra: Infra
) -> None:
    room, topic = f"h-{uuid.uuid4().hex[:6]}", f"t{uuid.uuid4().hex[:6]}"
    tok = token(rooms=[room], topics=[topic])
    live, hello = await connect(edge.edge, token=tok, roomIds=room, topics=f"{topic}:a")
    started_ms = int(time.time() * 1000) - 1
    async with bus_publisher(infra, edge.topic) as publisher:
        await _publish_mix(publisher, room, topic)
        marker = message({"end": True}, room=room)
        topic_marker = message({"end": True}, topic=topic, type_="a")
        await publisher.send(marker)
        await publisher.send(topic_marker)
    # The two markers sit on different keys: wait for both.
    received = await pushes_until(live, marker.message_id)
    ids = {m["meta"]["message_id"] for m in received}
    if topic_marker.message_id not in ids:
        received += await pushes_until(live, topic_marker.message_id)
    await live.close()
    assert len(received) == 600 + 30 + 2

    query = {"room": room, "topic": topic, "type": "a"}
    paged = page_through(edge, tok, 137, since=hello["position"], **query)
    assert by_partition(paged) == by_partition(received)
    # Most of it lay beyond the in-memory history: it was read back from the bus.
    assert metric(edge.edge, "roomcast_edge_archive_records_total") > 1000
    # The same from a time instead of a vector (the bus's offsets for a time).
    timed = page_through(edge, tok, 1000, from_ms=str(started_ms), **query)
    assert by_partition(timed) == by_partition(received)
    # A room alone: what a connection in the room without subscriptions gets.
    status, body = history(edge, tok, room=room, since=hello["position"], limit="1000")
    assert status == 200
    assert all("topic" not in m for m in body["messages"])
    assert marker.message_id in [m["meta"]["message_id"] for m in body["messages"]]
    # The token in the Authorization header works the same.
    url = edge.edge.url + "/v1/history?" + urllib.parse.urlencode({"room": room, "limit": "5"})
    status, raw = http_get(url, {"Authorization": f"Bearer {tok}"})
    assert status == 200
    assert len(json.loads(raw)["messages"]) == 5


async def _publish_mix(publisher: Publisher, room: str, topic: str) -> None:
    msgs = []
    for i in range(1200):
        kind = i % 4
        if kind == 0:
            msgs.append(message({"i": i}, room=room))
        elif kind == 1:
            msgs.append(message({"i": i}, room=room, topic=topic, type_="a"))
        elif kind == 2:
            msgs.append(message({"i": i}, room=room, topic=topic, type_="b"))  # not selected
        else:
            msgs.append(message({"i": i}, room=room + "-other"))  # not selected
    for start in range(0, len(msgs), 400):
        await publisher.send_many(msgs[start : start + 400])
    await publisher.send_many([message({"i": -1}, topic=topic, type_="a") for _ in range(30)])


async def test_bad_input_is_a_clear_4xx(edge: SharedEdge) -> None:
    tok = token(rooms=["r1"], topics=["t1"])
    future = str(int(time.time() * 1000) + 3_600_000)
    cases: list[tuple[dict[str, str], str | None, int, str]] = [
        ({"room": "r1"}, None, 401, "token_invalid"),
        ({"room": "r1"}, "not-a-token", 401, "token_invalid"),
        ({}, tok, 400, "missing_selection"),
        ({"type": "x", "room": "r1"}, tok, 400, "invalid_type"),
        ({"room": "r2"}, tok, 403, "room_not_allowed"),
        ({"topic": "t2"}, tok, 403, "topic_not_allowed"),
        ({"room": "r1", "since": "0:abc"}, tok, 400, "invalid_since"),
        ({"room": "r1", "since": "0:1,0:2"}, tok, 400, "invalid_since"),
        ({"room": "r1", "since": "-1:3"}, tok, 400, "invalid_since"),
        ({"room": "r1", "limit": "0"}, tok, 400, "invalid_limit"),
        ({"room": "r1", "limit": "1001"}, tok, 400, "invalid_limit"),
        ({"room": "r1", "limit": "ten"}, tok, 400, "invalid_limit"),
        ({"room": "r1", "limit": "9" * 40}, tok, 400, "invalid_limit"),
        ({"room": "r1", "from_ms": future}, tok, 400, "invalid_from_ms"),
        ({"room": "r1", "from_ms": "-5"}, tok, 400, "invalid_from_ms"),
        ({"room": "r1", "from_ms": "1", "since": "0:1"}, tok, 400, "invalid_range"),
        ({"room": "x" * 300}, tok, 400, "invalid_room"),
    ]
    for query, tok_used, status, code in cases:
        got_status, body = history(edge, tok_used, **query)
        assert (got_status, body["error"]["code"]) == (status, code), (query, body)
        assert body["error"]["message"]
    # And a good request still answers after all of them.
    status, body = history(edge, tok, room="r1", limit="1000")
    assert status == 200
    assert body["complete"] is True
