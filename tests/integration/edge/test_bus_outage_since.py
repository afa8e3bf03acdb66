"""A `since` older than the edge's memory while Kafka is away: the edge cannot read
what the client missed, and Kafka still holds it, so it asks the client to retry
(503) rather than answer `recovered: false`; once Kafka is back the same vector
recovers everything."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets

from roomcast_harness.kafka_broker import KafkaBroker
from tests.conftest import Infra, ServiceFactory
from tests.integration.edge.conftest import WAIT, connect, message, recv_json, token
from tests.integration.edge.test_kafka_outage import _send


async def test_a_since_beyond_memory_is_retried_through_a_kafka_outage_not_lost(
    infra: Infra, topic: str, start_service: ServiceFactory, own_kafka: KafkaBroker
) -> None:
    env = {
        **infra.env(topic),
        "ROOMCAST_KAFKA__BOOTSTRAP_SERVERS": own_kafka.bootstrap_servers,
        "ROOMCAST_EDGE__HISTORY_SIZE": "5",
    }
    edge = start_service("edge", env)
    ws, hello = await connect(edge, token=token(), roomIds="o1")
    start = str(hello["position"])
    sent = [message({"n": i}, room="o1") for i in range(20)]
    await _send(own_kafka.bootstrap_servers, topic, *sent)
    for expected in sent:  # the edge has read them all
        assert (await recv_json(ws))["meta"]["message_id"] == expected.message_id
    await ws.close()

    await asyncio.to_thread(own_kafka.stop)
    with pytest.raises(websockets.InvalidStatus) as refused:
        await connect(edge, token=token(), roomIds="o1", since=start)
    response = refused.value.response
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert json.loads(response.body or b"{}")["error"]["code"] == "bus_unavailable"

    await asyncio.to_thread(own_kafka.start)
    hello_again: dict[str, Any] | None = None
    retried: set[int] = set()
    async with asyncio.timeout(WAIT * 6):
        while hello_again is None:
            try:
                ws, hello_again = await connect(edge, token=token(), roomIds="o1", since=start)
            except websockets.InvalidStatus as again:
                retried.add(again.response.status_code)
                await asyncio.sleep(1)
    assert retried <= {503}
    assert hello_again["recovered"] is True
    got = [(await recv_json(ws))["meta"]["message_id"] for _ in sent]
    assert got == [m.message_id for m in sent]
    await ws.close()
