"""Kafka read back: what the edge's in-memory history no longer holds, from the topic.

A history read or a recovery older than the history borrows a reader: a consumer
of its own (no group, nothing committed) assigned to one partition at a time and
moved with seek. At most `readers` are lent at once per edge; others wait for one.
Idle readers are kept for the next borrower, so a read does not pay for a new
connection to the brokers. Log starts and offsets-for-times go through one shared
consumer that is never assigned anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from roomcast_core.kafka_link import kafka_options, start_client
from roomcast_core.settings import KafkaSettings
from roomcast_edge.adapters.archive_reading import YIELD_EVERY, CpuBudget, Lending, decode
from roomcast_edge.domain.ports import ArchiveChunk, ArchiveGone, Wanted
from roomcast_edge.domain.publication import Publication
from roomcast_edge.metrics import EdgeMetrics

log = logging.getLogger(__name__)

# One fetch waits at most this long for records that exist (they are behind the end).
FETCH_MS = 1000
FETCH_ATTEMPTS = 10
# Bytes one fetch brings per partition: a reader's memory, whatever the gap.
FETCH_BYTES = 64 * 1024


class KafkaReader:
    def __init__(
        self, consumer: AIOKafkaConsumer, topic: str, metrics: EdgeMetrics, budget: CpuBudget
    ) -> None:
        self._consumer = consumer
        self._budget = budget
        self._topic = topic
        self._metrics = metrics
        self._at: tuple[int, int] | None = None  # (partition, next offset) of the consumer
        self.purpose = ""

    async def read(
        self, partition: int, after: int, upto: int, max_records: int, wanted: Wanted
    ) -> ArchiveChunk:
        if upto <= after:
            return ArchiveChunk([], after)
        consumer = self._consumer
        tp = TopicPartition(self._topic, partition)
        sought = self._at != (partition, after + 1)
        if sought:
            first = (await consumer.beginning_offsets([tp]))[tp]
            if first > after + 1:
                raise ArchiveGone(partition, first)
            consumer.assign([tp])
            consumer.seek(tp, after + 1)
        publications: list[Publication] = []
        last = after
        records: list[Any] = []
        for _ in range(FETCH_ATTEMPTS):
            batch = await consumer.getmany(tp, timeout_ms=FETCH_MS, max_records=max_records)
            records = batch.get(tp, [])
            if not records:
                continue
            if sought and records[0].offset > after + 1:
                # Deleted between the check and the fetch (the consumer skipped ahead).
                self._at = None
                raise ArchiveGone(partition, records[0].offset)
            started = time.perf_counter()
            for i, record in enumerate(records):
                if record.offset > upto:
                    break
                if i and i % YIELD_EVERY == 0:
                    await self._budget.spend(time.perf_counter() - started)
                    await asyncio.sleep(0)
                    started = time.perf_counter()
                last = record.offset
                publication = decode(
                    partition, record.offset, record.value, record.timestamp / 1000, wanted
                )
                if publication is not None:
                    publications.append(publication)
            await self._budget.spend(time.perf_counter() - started)
            break
        self._metrics.archive_records.labels(self.purpose).inc(last - after)
        if last < upto and records and records[-1].offset <= upto:
            self._at = (partition, last + 1)
        else:
            self._at = None  # fetched past `upto`: the consumer's position is beyond
        return ArchiveChunk(publications, last)

    async def stop(self) -> None:
        self._at = None
        with contextlib.suppress(Exception):
            await self._consumer.stop()


class KafkaArchive:
    def __init__(self, settings: KafkaSettings, readers: int, metrics: EdgeMetrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self._lending = Lending(readers, metrics)
        self._idle: list[KafkaReader] = []
        self._meta: AIOKafkaConsumer | None = None
        self._meta_lock = asyncio.Lock()
        self._budget = CpuBudget()
        self._known_start: dict[int, int] | None = None

    def _consumer(self) -> AIOKafkaConsumer:
        settings = self._settings
        return AIOKafkaConsumer(
            **kafka_options(settings),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=FETCH_BYTES,
            request_timeout_ms=int(settings.request_timeout * 1000) + 30_000,
        )

    async def _meta_consumer(self) -> AIOKafkaConsumer:
        async with self._meta_lock:
            if self._meta is None:
                consumer = self._consumer()
                await start_client(consumer, self._settings)
                self._meta = consumer
            return self._meta

    def _tps(self, partitions: Sequence[int]) -> list[TopicPartition]:
        return [TopicPartition(self._settings.topic, p) for p in partitions]

    async def log_start(self, partitions: Sequence[int]) -> dict[int, int]:
        consumer = await self._meta_consumer()
        found = await consumer.beginning_offsets(self._tps(partitions))
        start = {tp.partition: offset for tp, offset in found.items()}
        self._known_start = start
        return start

    def known_log_start(self) -> dict[int, int] | None:
        return self._known_start

    async def offsets_at(self, timestamp_ms: int, partitions: Sequence[int]) -> dict[int, int]:
        consumer = await self._meta_consumer()
        tps = self._tps(partitions)
        found = await consumer.offsets_for_times(dict.fromkeys(tps, timestamp_ms))
        end = await consumer.end_offsets(tps)
        return {tp.partition: end[tp] if found.get(tp) is None else found[tp].offset for tp in tps}

    @contextlib.asynccontextmanager
    async def reader(self, purpose: str, owner: str = "") -> AsyncIterator[KafkaReader]:
        async with self._lending.slot(owner):
            reader: KafkaReader | None = None
            try:
                if self._idle:
                    reader = self._idle.pop()
                else:
                    consumer = self._consumer()
                    await start_client(consumer, self._settings)
                    reader = KafkaReader(
                        consumer, self._settings.topic, self._metrics, self._budget
                    )
                reader.purpose = purpose
                yield reader
                self._idle.append(reader)
                reader = None
            finally:
                if reader is not None:
                    # Interrupted or failed: its state is unknown, it is not reused.
                    await reader.stop()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for reader in idle:
            await reader.stop()
        if self._meta is not None:
            with contextlib.suppress(Exception):
                await self._meta.stop()
            self._meta = None
