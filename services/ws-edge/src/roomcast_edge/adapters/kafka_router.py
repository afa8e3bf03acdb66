"""Shared ingest on Kafka, the reading side: this edge's share of the partitions, routed.

The edges of a deployment form one consumer group, so each partition is read by one
live edge at a time. Each record is decoded once into its push, and sent on the one
channel its key picks (see domain.routing) with SPUBLISH, consecutive records of a
channel in one payload; a batch's messages, in offset order per partition, and then
the watermark of its partitions go in one pipeline, so Redis handles them in that
order. Offsets are committed only once the pipeline was answered: an edge taking a
partition over (its reader left the group, or was killed and its session timed out)
goes on from where routing stopped. What it routes again is dropped by receivers,
which keep each offset once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from roomcast_core.kafka_link import kafka_options, start_client
from roomcast_core.settings import KafkaSettings
from roomcast_core.wire import WireError, decode_value, parse_time
from roomcast_edge.adapters.ingest import UndecodableLog
from roomcast_edge.domain.publication import make_publication
from roomcast_edge.domain.routing import (
    Routed,
    channel_of,
    channel_runs,
    encode_watermark,
)
from roomcast_edge.metrics import EdgeMetrics

log = logging.getLogger(__name__)

BATCH_RECORDS = 2_000
POLL_MS = 100
RETRY_SECONDS = 1.0
# Watermarks of idle partitions: how soon a receiver learns that nothing came, which
# bounds how long a channel taken up waits before its gap is filled.
WATERMARK_EVERY = 0.1
# A reading edge killed without leaving the group loses its partitions after this; with
# the rebalance that follows, another edge reads them well within 30 s.
SESSION_TIMEOUT_MS = 10_000
HEARTBEAT_MS = 2_000
# Seconds a partition's start position may take to be known (asked again after).
START_TIMEOUT = 5.0


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, router: KafkaRouter) -> None:
        self._router = router

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._router.revoked({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self._router.assigned({tp.partition for tp in assigned})


class KafkaRouter:
    def __init__(
        self,
        settings: KafkaSettings,
        group: str,
        redis: aioredis.Redis,
        prefix: str,
        metrics: EdgeMetrics,
    ) -> None:
        self._settings = settings
        self._group = group
        self._redis = redis
        self._prefix = prefix
        self._metrics = metrics
        self._broadcast = channel_of(prefix, ("all", ""))
        # Per owned partition, the offset up to which every record was routed (None: its
        # start position is not known yet).
        self._routed: dict[int, int | None] = {}
        self._partition_count = 0
        # Revocations so far: a start position asked for before one is stale.
        self._revocations = 0
        # Held while a batch is routed and committed: a revocation waits for it.
        self._lock = asyncio.Lock()
        self._undecodable = UndecodableLog(metrics, "records")

    # ---- group membership ----------------------------------------------------------

    def assigned(self, partitions: set[int]) -> None:
        for partition in partitions:
            self._routed.setdefault(partition, None)
        self._metrics.partitions_owned.set(len(self._routed))
        log.info("routing partitions", extra={"partitions": sorted(self._routed)})

    async def revoked(self, partitions: set[int]) -> None:
        async with self._lock:  # the batch being routed is committed first
            self._revocations += 1
            for partition in partitions:
                self._routed.pop(partition, None)
        self._metrics.partitions_owned.set(len(self._routed))

    # ---- running -------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            consumer: AIOKafkaConsumer | None = None
            try:
                await _ensure_topic(self._settings)
                consumer = self._consumer()
                await start_client(consumer, self._settings)
                consumer.subscribe([self._settings.topic], listener=_Rebalance(self))
                await self._route_forever(consumer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("kafka router failed, retrying", extra={"error": repr(exc)})
                await asyncio.sleep(RETRY_SECONDS)
            finally:
                self._routed.clear()
                self._metrics.partitions_owned.set(0)
                if consumer is not None:
                    with contextlib.suppress(Exception):
                        await consumer.stop()  # leaves the group: the others take over

    def _consumer(self) -> AIOKafkaConsumer:
        settings = self._settings
        return AIOKafkaConsumer(
            **kafka_options(settings),
            group_id=self._group,
            enable_auto_commit=False,
            # A group that never committed starts at the end: what came before is read
            # back from the log by whoever needs it (recovery), never pushed as new.
            auto_offset_reset="latest",
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_MS,
            request_timeout_ms=int(settings.request_timeout * 1000) + 30_000,
        )

    async def _route_forever(self, consumer: AIOKafkaConsumer) -> None:
        topic = self._settings.topic
        next_mark = 0.0
        while True:
            batch = await consumer.getmany(timeout_ms=POLL_MS, max_records=BATCH_RECORDS)
            self._partition_count = len(consumer.partitions_for_topic(topic) or ())
            # Records may come before the assignment callback: the assignment is the truth.
            assignment = consumer.assignment()
            for tp in batch:
                if tp in assignment:
                    self._routed.setdefault(tp.partition, None)
            # Outside the lock: a rebalance waiting for it must not wait for the broker.
            await self._start_positions(consumer, batch)
            async with self._lock:
                assignment = consumer.assignment()
                owned = {}
                for tp, records in batch.items():
                    if tp not in assignment:
                        continue  # revoked: its next reader fetches these again
                    if self._routed.get(tp.partition) is None:
                        consumer.seek(tp, records[0].offset)  # start unknown: read again
                        continue
                    owned[tp] = records
                if owned:
                    await self._route(consumer, owned)
                    next_mark = time.monotonic() + WATERMARK_EVERY
                elif time.monotonic() >= next_mark:
                    await self._send_watermark()
                    next_mark = time.monotonic() + WATERMARK_EVERY

    async def _start_positions(self, consumer: AIOKafkaConsumer, batch: dict[Any, Any]) -> None:
        """Where routing starts on partitions just assigned: the committed offset, or
        the end for a group that never read the partition, committed at once so that
        an edge taking the partition over goes on from there, not from a later end.
        It is the first record fetched when there is one (the position is past it)."""
        topic = self._settings.topic
        for partition, routed in list(self._routed.items()):
            if routed is None:
                revocations = self._revocations
                tp = TopicPartition(topic, partition)
                try:
                    records = batch.get(tp)
                    if records:
                        position = records[0].offset
                    else:
                        position = await asyncio.wait_for(consumer.position(tp), START_TIMEOUT)
                    if await consumer.committed(tp) is None:
                        await consumer.commit({tp: position})
                except (KafkaError, TimeoutError):
                    continue  # taken away meanwhile, or asked again on the next turn
                if revocations == self._revocations and partition in self._routed:
                    self._routed[partition] = position - 1

    async def _route(self, consumer: AIOKafkaConsumer, batch: dict[Any, list[Any]]) -> None:
        payloads: list[tuple[str, bytes]] = []
        prefix = self._prefix
        commit: dict[TopicPartition, int] = {}
        count = 0
        for tp, records in batch.items():
            partition = tp.partition
            decoded: list[Routed] = []
            self._metrics.bus_records.inc(len(records))
            for record in records:
                try:
                    message = decode_value(record.value)
                    publication = make_publication(
                        message, partition, record.offset, record.timestamp / 1000
                    )
                except WireError as exc:
                    self._undecodable.skipped(partition, record.offset, exc)
                    continue
                try:
                    epoch: float | None = parse_time(message.receive_time)
                except WireError:
                    epoch = None
                decoded.append(Routed(publication, epoch))
            payloads.extend(channel_runs(prefix, decoded))
            count += len(decoded)
            last = records[-1].offset
            commit[tp] = last + 1
        routed = dict(self._routed)
        for tp, next_offset in commit.items():
            routed[tp.partition] = next_offset - 1
        pipe = self._redis.pipeline(transaction=False)
        for channel, payload in payloads:
            pipe.spublish(channel, payload)
        pipe.spublish(self._broadcast, self._watermark(routed))
        await pipe.execute()
        for partition, offset in routed.items():
            if partition in self._routed:
                self._routed[partition] = offset
        self._metrics.routed.labels("out").inc(count)
        try:
            await consumer.commit(commit)
        except KafkaError as exc:
            # A rebalance took the partition: its next reader routes these again, and
            # receivers keep each offset once.
            log.info("commit after routing failed", extra={"error": repr(exc)})

    def _watermark(self, routed: dict[int, int | None]) -> bytes:
        known = {p: o for p, o in routed.items() if o is not None}
        return encode_watermark(self._partition_count, known)

    async def _send_watermark(self) -> None:
        if any(o is not None for o in self._routed.values()):
            await self._redis.spublish(self._broadcast, self._watermark(self._routed))


async def _ensure_topic(settings: KafkaSettings) -> None:
    """Create the topic when it does not exist yet (as the edge's `all` source does)."""
    admin = AIOKafkaAdminClient(
        **kafka_options(settings),
        request_timeout_ms=int(settings.request_timeout * 1000),
    )
    await start_client(admin, settings)
    try:
        if settings.topic not in await admin.list_topics():
            with contextlib.suppress(TopicAlreadyExistsError):
                topic = NewTopic(settings.topic, settings.partitions, settings.replication_factor)
                await admin.create_topics([topic])
    finally:
        await admin.close()
