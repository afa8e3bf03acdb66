"""The stream: every partition of the topic, read by this edge alone (no consumer group).

At start each partition is read from the latest of its beginning, `history_size`
records before its end and the first record younger than `history_age`: those
records fill the recovery history without being pushed (so this edge can serve
position vectors produced by another edge), then the source goes live. The edge is
ready once every partition has been read up to the end offsets seen at start.
Kafka going away is ridden out by aiokafka's own reconnects: the consumer keeps its
position, so reading resumes at the next offset with nothing lost or repeated.

Every `check_interval` seconds the topic's partitions and end offsets are checked:
a partition added meanwhile is read from its first offset (and pushed, as nothing of
it was pushed before); a partition whose offsets went backwards (the topic was
re-created, or the log lost records) has its history reset and is read again from
its beginning. A record older than one already read is the same sign, seen sooner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from opentelemetry import propagate
from opentelemetry.propagators.textmap import Getter

from roomcast_core.kafka_link import kafka_options, start_client
from roomcast_core.settings import KafkaSettings
from roomcast_core.wire import WireError, decode_value, header_value, parse_time
from roomcast_edge.adapters.ingest import UndecodableLog, publish_traced, trace_id_of
from roomcast_edge.domain.ports import PublicationSink
from roomcast_edge.domain.publication import make_publication
from roomcast_edge.metrics import EdgeMetrics

log = logging.getLogger(__name__)

BATCH_RECORDS = 10_000
RETRY_SECONDS = 1.0
POLL_MS = 1000
# A check waits on the broker; reading the stream must not wait long for it.
CHECK_TIMEOUT = 5.0


class _Getter(Getter[Any]):
    """OpenTelemetry getter over aiokafka's (name, bytes) header pairs."""

    def get(self, carrier: Any, key: str) -> list[str] | None:
        value = header_value(carrier, key)
        return [value.decode("latin-1")] if value is not None else None

    def keys(self, carrier: Any) -> list[str]:
        return [name for name, _ in carrier or ()]


_GETTER = _Getter()


class KafkaSource:
    def __init__(
        self,
        settings: KafkaSettings,
        history_size: int,
        sink: PublicationSink,
        metrics: EdgeMetrics,
        trace_id_in_meta: bool = False,
        history_age: float | None = None,
        check_interval: float = 30.0,
    ) -> None:
        self._settings = settings
        self._history_size = history_size
        self._history_age = history_age
        self._check_interval = check_interval
        self._sink = sink
        self._metrics = metrics
        self._trace_id_in_meta = trace_id_in_meta
        self._consumer: AIOKafkaConsumer | None = None
        self._targets: dict[int, int] = {}
        self._last: dict[int, int] = {}
        # Partitions whose end offset was behind what was read at the last check: reset
        # when the next check sees the same (a new leader may briefly report less).
        self._behind: set[int] = set()
        self.assigned = False
        self.caught_up = False
        self._failure = ""
        self._undecodable = UndecodableLog(metrics, "records")

    # ---- readiness ---------------------------------------------------------

    async def readiness(self) -> str | None:
        if not self.assigned:
            # Why the last start failed (a refused password, an untrusted certificate).
            return "partitions not assigned yet" + (f": {self._failure}" if self._failure else "")
        if not self.caught_up:
            return "catching up with the stream"
        consumer = self._consumer
        if consumer is None:
            return "consumer not running"
        try:
            topics = await consumer.topics()
        except KafkaError as exc:
            return f"broker unreachable: {exc}"
        if self._settings.topic not in topics:
            return f"topic {self._settings.topic!r} is missing"
        return None

    # ---- running -----------------------------------------------------------

    async def run(self) -> None:
        """Read until cancelled; (re)connect with a pause whenever start-up fails."""
        while True:
            try:
                await self._run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failure = f"{type(exc).__name__}: {exc}"
                log.warning("kafka source failed, retrying", extra={"error": repr(exc)})
                await asyncio.sleep(RETRY_SECONDS)
            finally:
                await self._stop_consumer()

    async def _stop_consumer(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _partitions(self) -> list[int]:
        """The topic's partitions, creating the topic when it does not exist yet."""
        settings = self._settings
        admin = AIOKafkaAdminClient(
            **kafka_options(settings),
            request_timeout_ms=int(settings.request_timeout * 1000),
        )
        await start_client(admin, settings)
        try:
            while True:
                if settings.topic not in await admin.list_topics():
                    with contextlib.suppress(TopicAlreadyExistsError):
                        await admin.create_topics(
                            [
                                NewTopic(
                                    settings.topic,
                                    settings.partitions,
                                    settings.replication_factor,
                                )
                            ]
                        )
                for entry in await admin.describe_topics([settings.topic]):
                    partitions = sorted(p["partition"] for p in entry.get("partitions", ()))
                    if entry.get("topic") == settings.topic and partitions:
                        return partitions
                log.info("waiting for the topic", extra={"topic": settings.topic})
                await asyncio.sleep(RETRY_SECONDS)
        finally:
            await admin.close()

    async def _run_once(self) -> None:
        settings = self._settings
        partitions = await self._partitions()
        consumer = AIOKafkaConsumer(
            **kafka_options(settings),
            group_id=None,
            enable_auto_commit=False,
            # An offset out of range (the log was truncated or re-created) restarts at
            # the beginning; `_handle` notices the offsets going backwards.
            auto_offset_reset="earliest",
            request_timeout_ms=int(settings.request_timeout * 1000) + 30_000,
            # The partition check reads the client's metadata: keep it fresher than that.
            metadata_max_age_ms=max(int(self._check_interval * 500), 100),
        )
        self._consumer = consumer
        await start_client(consumer, settings)
        tps = [TopicPartition(settings.topic, p) for p in partitions]
        self._metrics.partitions_owned.set(len(partitions))
        if not self.assigned:
            # First start: read back enough to fill the history, then go live.
            consumer.assign(tps)
            beginning = await consumer.beginning_offsets(tps)
            end = await consumer.end_offsets(tps)
            young = await self._first_young(consumer, tps)
            for tp in tps:
                first = fill_start(
                    beginning[tp], end[tp], self._history_size, young.get(tp, beginning[tp])
                )
                self._sink.start_partition(tp.partition, first)
                self._last[tp.partition] = first - 1
                self._targets[tp.partition] = end[tp]
            self._assign(consumer)
            self.assigned = True
            log.info(
                "reading the stream",
                extra={"topic": settings.topic, "partitions": partitions, "end": self._targets},
            )
        else:
            # A restart of the consumer after a failure: carry on where we were, and
            # read partitions added meanwhile from their beginning.
            await self._add(consumer, [p for p in partitions if p not in self._last])
        if not self.caught_up:
            self._check_caught_up()
        loop = asyncio.get_running_loop()
        next_check = loop.time() + self._check_interval
        poll_ms = min(POLL_MS, max(int(self._check_interval * 1000), 10))
        while True:
            batch = await consumer.getmany(timeout_ms=poll_ms, max_records=BATCH_RECORDS)
            for tp, records in batch.items():
                self._handle(tp, records)
            if not self.caught_up:
                self._check_caught_up()
            if loop.time() >= next_check:
                try:
                    # The check changes state only in synchronous steps after its
                    # awaits, so an interrupted check leaves nothing half done.
                    await asyncio.wait_for(self._check_partitions(consumer), CHECK_TIMEOUT)
                except (TimeoutError, KafkaError) as exc:
                    log.info("topic check failed, retried later", extra={"error": repr(exc)})
                next_check = loop.time() + self._check_interval

    async def _first_young(
        self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Per partition, the first offset young enough for the history (end when none)."""
        if self._history_age is None:
            return {}
        since_ms = int((time.time() - self._history_age) * 1000)
        found = await consumer.offsets_for_times({tp: since_ms for tp in tps})
        end = await consumer.end_offsets(tps)
        return {tp: end[tp] if found.get(tp) is None else found[tp].offset for tp in tps}

    def _assign(self, consumer: AIOKafkaConsumer) -> None:
        """Assign every known partition, each at the next offset to read.

        Synchronous: assign() forgets every position, and no fetch may happen before
        each is set again.
        """
        topic = self._settings.topic
        consumer.assign([TopicPartition(topic, p) for p in sorted(self._last)])
        for tp, offset in self._next.items():
            consumer.seek(tp, offset)

    async def _add(self, consumer: AIOKafkaConsumer, added: list[int]) -> None:
        """Read these partitions too, from their first offset."""
        if added:
            topic = self._settings.topic
            new = [TopicPartition(topic, p) for p in sorted(added)]
            beginning = await consumer.beginning_offsets(new)
            for tp in new:
                self._sink.start_partition(tp.partition, beginning[tp])
                self._last[tp.partition] = beginning[tp] - 1
            log.info(
                "reading added partitions",
                extra={"topic": topic, "partitions": sorted(added), "from": beginning},
            )
        self._assign(consumer)

    async def _check_partitions(self, consumer: AIOKafkaConsumer) -> None:
        """Pick up added partitions; reset those whose offsets went backwards."""
        topic = self._settings.topic
        current = consumer.partitions_for_topic(topic) or set()
        added = sorted(p for p in current if p not in self._last)
        if added:
            await self._add(consumer, added)
        tps = [TopicPartition(topic, p) for p in sorted(self._last) if p in current]
        if not tps:
            return
        end = await consumer.end_offsets(tps)
        behind = {tp.partition for tp, offset in end.items() if offset <= self._last[tp.partition]}
        gone = [TopicPartition(topic, p) for p in sorted(behind & self._behind)]
        beginning = await consumer.beginning_offsets(gone) if gone else {}
        self._behind = behind
        for tp in gone:
            self._reset(tp.partition, beginning[tp], end[tp])
            consumer.seek(tp, beginning[tp])

    def _reset(self, partition: int, first: int, end: int | None = None) -> None:
        log.warning(
            "offsets went backwards: history of the partition reset",
            extra={
                "topic": self._settings.topic,
                "partition": partition,
                "last_read": self._last.get(partition),
                "reading_from": first,
                "end": end,
            },
        )
        self._sink.reset_partition(partition, first)
        self._last[partition] = first - 1
        self._behind.discard(partition)
        # What follows a reset is new to every client: live, whatever was read before.
        self._targets[partition] = min(self._targets.get(partition, first), first)

    @property
    def _next(self) -> dict[TopicPartition, int]:
        topic = self._settings.topic
        return {TopicPartition(topic, p): o + 1 for p, o in self._last.items()}

    def _check_caught_up(self) -> None:
        if all(self._last.get(p, -1) + 1 >= end for p, end in self._targets.items()):
            self.caught_up = True
            self._sink.go_live()
            log.info("caught up with the stream, live")

    def _handle(self, tp: TopicPartition, records: list[Any]) -> None:
        partition = tp.partition
        if records and records[0].offset <= self._last.get(partition, -1):
            # Records are only handed over from the position we set, past everything
            # read: an earlier offset means the consumer was sent back to the start
            # of a log that is not the one we read (re-created or truncated).
            self._reset(partition, records[0].offset)
        target = self._targets.get(partition, 0)
        sink = self._sink
        self._metrics.bus_records.inc(len(records))
        for record in records:
            offset = record.offset
            self._last[partition] = offset
            live = offset >= target
            headers = record.headers
            traced = live and header_value(headers, "traceparent") is not None
            trace_id = None
            if traced and self._trace_id_in_meta:
                traceparent = header_value(headers, "traceparent") or b""
                trace_id = trace_id_of(traceparent)
            try:
                message = decode_value(record.value)
                publication = make_publication(
                    message, partition, offset, record.timestamp / 1000, trace_id
                )
            except WireError as exc:
                sink.skip(partition, offset)
                self._undecodable.skipped(partition, offset, exc)
                continue
            try:
                receive_epoch: float | None = parse_time(message.receive_time)
            except WireError:
                receive_epoch = None
            if not traced:
                sink.publish(publication, receive_epoch, live)
                continue
            publish_traced(
                sink,
                publication,
                receive_epoch,
                message,
                propagate.extract(headers, getter=_GETTER),
                {
                    "messaging.system": "kafka",
                    "messaging.destination.name": tp.topic,
                    "messaging.kafka.offset": offset,
                },
            )


def fill_start(beginning: int, end: int, size: int, first_young: int) -> int:
    """Where the start-up fill reads a partition from: within the count and age bounds.

    The byte bound needs the records' sizes, so the history applies it while filling.
    """
    return min(end, max(beginning, end - size, first_young))
