"""Kafka going away: readiness turns 503, then reading resumes with nothing lost or repeated."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from roomcast_harness.kafka_broker import KafkaBroker
from tests.conftest import Infra, ServiceFactory
from tests.integration.edge.conftest import (
    WAIT,
    Publisher,
    connect,
    expect_nothing,
    http_get,
    message,
    recv_json,
    token,
)


async def _readyz_becomes(url: str, status: int, timeout: float) -> None:
    async def poll() -> None:
        while (await asyncio.to_thread(http_get, url + "/readyz"))[0] != status:
            await asyncio.sleep(0.2)

    await asyncio.wait_for(poll(), timeout)


async def _send(bootstrap: str, topic: str, *msgs: object) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await Publisher(producer, topic).send_many(msgs)  # type: ignore[arg-type]
    finally:
        await producer.stop()


async def test_edge_rides_out_a_kafka_restart(
    infra: Infra, topic: str, start_service: ServiceFactory, own_kafka: KafkaBroker
) -> None:
    env = {**infra.env(topic), "ROOMCAST_KAFKA__BOOTSTRAP_SERVERS": own_kafka.bootstrap_servers}
    edge = start_service("edge", env)
    ws, _ = await connect(edge, {"ping_interval": 1}, token=token())
    before = message("before")
    await _send(own_kafka.bootstrap_servers, topic, before)
    assert (await recv_json(ws))["meta"]["message_id"] == before.message_id

    await asyncio.to_thread(own_kafka.stop)
    await _readyz_becomes(edge.url, 503, WAIT * 3)
    await asyncio.to_thread(own_kafka.start)
    await _readyz_becomes(edge.url, 200, WAIT * 6)

    after = [message({"after": i}) for i in range(3)]
    await _send(own_kafka.bootstrap_servers, topic, *after)
    for expected in after:
        assert (await recv_json(ws, timeout=WAIT * 3))["meta"]["message_id"] == expected.message_id
    await expect_nothing(ws, 1.0)  # and "before" does not come again
    await ws.close()
