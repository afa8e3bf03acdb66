"""The messages topic read directly for the operator: no consumer group, every partition.

A follower starts at the end of each partition and exists only while a tail is open;
after a failure it starts again from the end (a tail shows what passes, it owes no
record). A look-back reads the last records of each partition with a short-lived
consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from roomcast_core.kafka_link import kafka_options, start_client
from roomcast_core.settings import KafkaSettings
from roomcast_publisher.domain.tail import BusRecord

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
BATCH_RECORDS = 1000
# A fetch waits at most this long for records: a tail shows a message well within 1 s.
FETCH_WAIT_MS = 100


class KafkaBusReader:
    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            **kafka_options(self._settings),
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=FETCH_WAIT_MS,
            request_timeout_ms=int(self._settings.request_timeout * 1000) + 30_000,
        )

    async def _partitions(self) -> list[TopicPartition]:
        """The topic's partitions as the broker has them now (a consumer's own metadata
        knows only topics it was told about)."""
        topic = self._settings.topic
        admin = AIOKafkaAdminClient(
            **kafka_options(self._settings),
            request_timeout_ms=int(self._settings.request_timeout * 1000),
        )
        try:
            await start_client(admin, self._settings)
            described = await admin.describe_topics([topic])
        finally:
            await admin.close()
        partitions = {
            p["partition"]
            for entry in described
            if entry.get("topic") == topic
            for p in entry.get("partitions", ())
        }
        return [TopicPartition(topic, p) for p in sorted(partitions)]

    async def follow(
        self, deliver: Callable[[list[BusRecord]], None], ready: Callable[[], None]
    ) -> None:
        while True:
            consumer = self._consumer()
            try:
                await start_client(consumer, self._settings)
                tps = await self._partitions()
                if not tps:
                    raise LookupError(f"topic {self._settings.topic!r} has no partitions yet")
                consumer.assign(tps)
                await consumer.seek_to_end(*tps)
                for tp in tps:
                    await consumer.position(tp)  # the end, resolved now: nothing before it
                ready()
                while True:
                    batch = await consumer.getmany(timeout_ms=500, max_records=BATCH_RECORDS)
                    records = [
                        BusRecord(tp.partition, r.offset, r.key, r.value)
                        for tp, rs in batch.items()
                        for r in rs
                    ]
                    if records:
                        deliver(records)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("tail reader failed, starting again: %r", exc)
                await asyncio.sleep(RETRY_SECONDS)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()

    async def recent(self, per_partition: int, timeout: float) -> list[BusRecord]:
        """What it could read within timeout (all of it, normally)."""
        consumer = self._consumer()
        records: list[BusRecord] = []
        try:
            async with asyncio.timeout(timeout):
                await start_client(consumer, self._settings)
                tps = await self._partitions()
                if not tps:
                    return []
                consumer.assign(tps)
                begin = await consumer.beginning_offsets(tps)
                end = await consumer.end_offsets(tps)
                wanted = {tp: end[tp] for tp in tps if end[tp] > begin[tp]}
                for tp in tps:
                    consumer.seek(tp, max(begin[tp], end[tp] - per_partition))
                consumer.pause(*[tp for tp in tps if tp not in wanted])
                while wanted:
                    batch = await consumer.getmany(timeout_ms=200, max_records=BATCH_RECORDS)
                    for tp, rs in batch.items():
                        stop = wanted.get(tp)
                        if stop is None:
                            continue
                        records.extend(
                            BusRecord(tp.partition, r.offset, r.key, r.value)
                            for r in rs
                            if r.offset < stop
                        )
                    for tp, stop in list(wanted.items()):
                        # By position, not by the last record: offsets may have gaps.
                        if await consumer.position(tp) >= stop:
                            del wanted[tp]
                            consumer.pause(tp)
        except TimeoutError:
            log.info("look-back cut short by its time bound", extra={"records": len(records)})
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
        return records
