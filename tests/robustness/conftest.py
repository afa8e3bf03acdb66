"""Fixtures of the robustness suite (helpers live in support.py and ledger.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from aiokafka import AIOKafkaProducer

from tests.conftest import Infra
from tests.integration.edge.conftest import Publisher


@pytest_asyncio.fixture
async def publisher(infra: Infra, topic: str) -> AsyncIterator[Publisher]:
    """Writes roomcast records straight to the session Kafka, on this test's topic."""
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        yield Publisher(producer, topic)
    finally:
        await producer.stop()
