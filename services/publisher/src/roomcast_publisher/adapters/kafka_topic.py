"""Create the messages topic when it is missing."""

from __future__ import annotations

import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from roomcast_core.kafka_link import kafka_options, start_client
from roomcast_core.settings import KafkaSettings

log = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = 36


async def ensure_topic(settings: KafkaSettings, timeout: float) -> None:
    """Create settings.topic with the configured partitions and replication if absent."""
    admin = AIOKafkaAdminClient(
        **kafka_options(settings),
        client_id="roomcast-publisher-admin",
        request_timeout_ms=int(timeout * 1000),
    )
    try:
        async with asyncio.timeout(timeout):
            await start_client(admin, settings)
            if settings.topic in await admin.list_topics():
                return
            topic = NewTopic(
                name=settings.topic,
                num_partitions=settings.partitions,
                replication_factor=settings.replication_factor,
            )
            response = await admin.create_topics([topic])
        for entry in response.topic_errors:
            code = entry[1]
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                raise KafkaError(f"creating topic {settings.topic!r} failed: {entry}")
        log.info(
            "created topic",
            extra={"topic": settings.topic, "partitions": settings.partitions},
        )
    finally:
        await admin.close()
