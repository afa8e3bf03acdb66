"""Each endpoint end to end: what the publisher answers is what a consumer reads from Kafka."""

from __future__ import annotations

import asyncio
import re

import pytest

from roomcast_core import wire
from roomcast_harness.services import ServiceProcess
from tests.conftest import BUSES, Infra, infra_on
from tests.integration.publisher.helpers import Landed, get, post, read_topic
from tests.streams import read_streams


@pytest.fixture(scope="module", params=BUSES)
def infra(request: pytest.FixtureRequest) -> Infra:
    """Every test here runs on Kafka and on Redis Streams."""
    return infra_on(request)


async def read_bus(infra: Infra, topic: str) -> list[Landed]:
    """Every record the publisher appended, in partition then offset order."""
    if infra.bus == "kafka":
        return await read_topic(infra.kafka_bootstrap, topic)
    return [
        Landed(
            entry.partition,
            entry.offset,
            entry.key,
            {k.decode(): v for k, v in entry.fields.items() if k not in (b"offset", b"key")},
            entry.message,
        )
        for entry in await read_streams(infra.redis_url, topic)
    ]


def by_position(records: list[Landed]) -> dict[str, Landed]:
    return {r.position: r for r in records}


async def test_message_lands_with_content_key_and_headers(
    publisher: ServiceProcess, infra: Infra, module_topic: str
) -> None:
    payload = {"content": "message", "n": [1, 2.5, None, True]}
    reply = await post(
        publisher.url + "/v1/messages",
        {
            "topic": "order",
            "type": "event",
            "room": "1001",
            "payload": payload,
            "message_id": "msg-001",
        },
    )
    assert reply.status == 202, reply.body
    assert set(reply.body) == {"message_id", "position", "receive_time"}
    assert reply.body["message_id"] == "msg-001"
    assert re.fullmatch(r"\d+:\d+", reply.body["position"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", reply.body["receive_time"])

    record = by_position(await read_bus(infra, module_topic))[reply.body["position"]]
    assert record.message == wire.Message(
        topic="order",
        type="event",
        room="1001",
        payload=payload,
        message_id="msg-001",
        receive_time=reply.body["receive_time"],
    )
    assert record.key == b"1001"
    if infra.bus == "kafka":
        assert record.headers["content-type"] == wire.CONTENT_TYPE
        assert record.headers["roomcast-message-id"] == b"msg-001"
    else:
        assert wire.decode_value(record.headers["value"]) == record.message


async def test_generated_ids_and_keys_without_room(
    publisher: ServiceProcess, infra: Infra, module_topic: str
) -> None:
    topic_only = await post(publisher.url + "/v1/messages", {"topic": "quotes", "payload": "p"})
    broadcast = await post(publisher.url + "/v1/messages", {"payload": None})
    assert topic_only.status == 202
    assert broadcast.status == 202
    assert re.fullmatch(r"[0-9a-f]{32}", topic_only.body["message_id"])
    assert topic_only.body["message_id"] != broadcast.body["message_id"]
    records = by_position(await read_bus(infra, module_topic))
    quote = records[topic_only.body["position"]]
    assert quote.key == b"quotes"
    assert quote.message.room is None
    assert quote.message.type is None
    assert quote.message.message_id == topic_only.body["message_id"]
    everyone = records[broadcast.body["position"]]
    assert everyone.key == wire.BROADCAST_KEY.encode()
    assert everyone.message.payload is None
    assert everyone.message.topic is None


async def test_many_messages_of_one_room_keep_their_order(
    publisher: ServiceProcess, infra: Infra, module_topic: str
) -> None:
    positions = []
    for n in range(25):
        reply = await post(publisher.url + "/v1/messages", {"room": "ordered", "payload": n})
        assert reply.status == 202
        positions.append(reply.body["position"])
    partitions = {p.split(":")[0] for p in positions}
    assert len(partitions) == 1
    offsets = [int(p.split(":")[1]) for p in positions]
    assert offsets == sorted(offsets)
    records = await read_bus(infra, module_topic)
    in_room = [r.message.payload for r in records if r.message.room == "ordered"]
    assert in_room == list(range(25))


async def test_batch_publishes_in_order_and_reports_each(
    publisher: ServiceProcess, infra: Infra, module_topic: str
) -> None:
    messages = [
        {"room": f"b-{n % 3}", "topic": "t", "type": "x", "payload": {"seq": n}} for n in range(18)
    ]
    messages[4]["message_id"] = "batch-id-4"
    reply = await post(publisher.url + "/v1/messages/batch", {"messages": messages})
    assert reply.status == 202, reply.body
    results = reply.body["results"]
    assert len(results) == 18
    assert all(r["status"] == 202 for r in results)
    assert results[4]["message_id"] == "batch-id-4"
    records = by_position(await read_bus(infra, module_topic))
    for n, result in enumerate(results):
        landed = records[result["position"]]
        assert landed.message.payload == {"seq": n}
        assert landed.message.message_id == result["message_id"]
        assert landed.key == f"b-{n % 3}".encode()
    for room in ("b-0", "b-1", "b-2"):
        seqs = [
            r.message.payload["seq"]
            for r in sorted(records.values(), key=lambda r: r.offset)
            if r.message.room == room
        ]
        assert seqs == sorted(seqs)
        assert len(seqs) == 6


async def test_compat_score_push(
    publisher: ServiceProcess, infra: Infra, module_topic: str
) -> None:
    with_room = await post(
        publisher.url + "/push/new/score/message", {"message": "2:1 (87')", "roomId": "1001"}
    )
    without_room = await post(publisher.url + "/push/new/score/message", {"message": "0:0"})
    assert with_room.status == 200
    assert with_room.body == {"message": "message sent"}
    assert without_room.status == 200
    records = await read_bus(infra, module_topic)
    scores = {r.message.payload: r for r in records if r.message.type == "score"}
    scored = scores["2:1 (87')"]
    assert scored.message.topic is None
    assert scored.message.room == "1001"
    assert scored.key == b"1001"
    assert scores["0:0"].message.room is None
    assert scores["0:0"].key == wire.BROADCAST_KEY.encode()


async def test_compat_errors_keep_the_old_shape(publisher: ServiceProcess) -> None:
    url = publisher.url + "/push/new/score/message"
    for body, data in [
        ({}, None),
        ({"message": ""}, None),
        ({"roomId": "1001"}, None),
        ({"message": 5}, None),
        ({"message": "x", "roomId": 1001}, None),
        (None, b"{not json"),
    ]:
        reply = await post(url, body, data=data)
        assert reply.status == 400, (body, data)
        assert set(reply.body) == {"error"}
        assert isinstance(reply.body["error"], str)
        assert reply.body["error"]


async def test_duplicate_message_id_publishes_once(
    publisher: ServiceProcess, infra: Infra, module_topic: str
) -> None:
    first = await post(
        publisher.url + "/v1/messages", {"room": "dup", "payload": 1, "message_id": "dup-1"}
    )
    again = await post(
        publisher.url + "/v1/messages", {"room": "dup", "payload": 2, "message_id": "dup-1"}
    )
    assert first.status == 202
    assert again.status == 202
    assert again.body == first.body
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers

    racing = await asyncio.gather(
        *(
            post(
                publisher.url + "/v1/messages", {"room": "dup", "payload": n, "message_id": "dup-2"}
            )
            for n in range(8)
        )
    )
    assert {r.status for r in racing} == {202}
    assert len({r.body["position"] for r in racing}) == 1

    in_batch = await post(
        publisher.url + "/v1/messages/batch",
        {"messages": [{"payload": "new"}, {"payload": 3, "message_id": "dup-1"}]},
    )
    assert in_batch.status == 202
    assert in_batch.body["results"][1]["position"] == first.body["position"]

    records = await read_bus(infra, module_topic)
    ids = [r.message.message_id for r in records]
    assert ids.count("dup-1") == 1
    assert ids.count("dup-2") == 1
    landed = next(r for r in records if r.message.message_id == "dup-1")
    assert landed.message.payload == 1


async def test_openapi_metrics_and_cors(publisher: ServiceProcess) -> None:
    document = await get(publisher.url + "/openapi.json")
    assert document.status == 200
    assert document.body["openapi"].startswith("3.")
    assert {"/v1/messages", "/v1/messages/batch", "/push/new/score/message"} <= set(
        document.body["paths"]
    )
    assert "payload" in document.body["components"]["schemas"]["MessageIn"]["required"]

    published = await post(
        publisher.url + "/v1/messages",
        {"payload": 1},
        headers={"Origin": "https://app.example"},
    )
    assert published.status == 202
    assert published.headers["Access-Control-Allow-Origin"] == "https://app.example"
    stranger = await post(
        publisher.url + "/v1/messages", {"payload": 1}, headers={"Origin": "https://evil.example"}
    )
    assert "Access-Control-Allow-Origin" not in stranger.headers

    metrics = await get(publisher.url + "/metrics")
    text = metrics.body
    assert 'roomcast_publisher_requests_total{endpoint="/v1/messages",status="202"}' in text
    produced = re.search(r"^roomcast_publisher_records_produced_total (\S+)$", text, re.M)
    assert produced is not None
    assert float(produced.group(1)) >= 2
    assert "roomcast_publisher_produce_seconds_bucket" in text
    assert "# TYPE roomcast_publisher_failures_total counter" in text
    assert (await get(publisher.url + "/readyz")).status == 200


async def test_concurrent_requests_share_idempotency_calls_and_each_publishes_once(
    publisher: ServiceProcess, infra: Infra, module_topic: str
) -> None:
    """40 requests at once (their claims and receipts travel together), then the same 40
    again: each id lands once, and every repeat answers with its first result."""
    url = publisher.url + "/v1/messages"
    ids = [f"crowd-{n}" for n in range(40)]
    first = await asyncio.gather(
        *(
            post(url, {"room": f"crowd-{n % 4}", "payload": n, "message_id": i})
            for n, i in enumerate(ids)
        )
    )
    assert {r.status for r in first} == {202}
    again = await asyncio.gather(
        *(post(url, {"room": "elsewhere", "payload": -1, "message_id": i}) for i in ids)
    )
    assert [r.status for r in again] == [202] * len(ids)
    assert [r.body for r in again] == [r.body for r in first]
    assert all(r.headers.get("Idempotent-Replayed") == "true" for r in again)

    records = await read_bus(infra, module_topic)
    landed = [r.message for r in records if r.message.message_id in set(ids)]
    assert sorted(m.message_id for m in landed) == sorted(ids)
    assert all(m.payload != -1 for m in landed)
