"""The stream: every partition of the topic, read by this edge alone (no consumer group).

At start each partition is read from max(beginning, end - history_size): those
records fill the recovery history without being pushed (so this edge can serve
position vectors produced by another edge), then the source goes live. The edge is
ready once every partition has been read up to the end offsets seen at start.
Kafka going away is ridden out by aiokafka's own reconnects: the consumer keeps its
position, so reading resumes at the next offset with nothing lost or repeated.
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
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind

from roomcast_core.settings import KafkaSettings
from roomcast_core.wire import WireError, decode_value, header_value, parse_time
from roomcast_edge.domain.ports import PublicationSink
from roomcast_edge.domain.publication import make_publication
from roomcast_edge.metrics import EdgeMetrics

log = logging.getLogger(__name__)
tracer = trace.get_tracer("roomcast_edge")

BATCH_RECORDS = 10_000
RETRY_SECONDS = 1.0
UNDECODABLE_LOG_EVERY = 10.0


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
    ) -> None:
        self._settings = settings
        self._history_size = history_size
        self._sink = sink
        self._metrics = metrics
        self._trace_id_in_meta = trace_id_in_meta
        self._consumer: AIOKafkaConsumer | None = None
        self._targets: dict[int, int] = {}
        self._last: dict[int, int] = {}
        self.assigned = False
        self.caught_up = False
        self._undecodable_since_log = 0
        self._undecodable_logged_at = 0.0

    # ---- readiness ---------------------------------------------------------

    async def readiness(self) -> str | None:
        if not self.assigned:
            return "partitions not assigned yet"
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
            bootstrap_servers=settings.bootstrap_servers,
            request_timeout_ms=int(settings.request_timeout * 1000),
        )
        await admin.start()
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
            bootstrap_servers=settings.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=int(settings.request_timeout * 1000) + 30_000,
        )
        self._consumer = consumer
        await consumer.start()
        tps = [TopicPartition(settings.topic, p) for p in partitions]
        consumer.assign(tps)
        if not self.assigned:
            # First start: read back enough to fill the history, then go live.
            beginning = await consumer.beginning_offsets(tps)
            end = await consumer.end_offsets(tps)
            for tp in tps:
                first = max(beginning[tp], end[tp] - self._history_size)
                consumer.seek(tp, first)
                self._sink.start_partition(tp.partition, first)
                self._last[tp.partition] = first - 1
                self._targets[tp.partition] = end[tp]
            self.assigned = True
            log.info(
                "reading the stream",
                extra={"topic": settings.topic, "partitions": partitions, "end": self._targets},
            )
        else:
            # A restart of the consumer after a failure: carry on where we were.
            for tp, offset in self._next.items():
                consumer.seek(tp, offset)
        if not self.caught_up:
            self._check_caught_up()
        while True:
            batch = await consumer.getmany(timeout_ms=1000, max_records=BATCH_RECORDS)
            for tp, records in batch.items():
                self._handle(tp, records)
            if not self.caught_up:
                self._check_caught_up()

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
        target = self._targets.get(partition, 0)
        sink = self._sink
        for record in records:
            offset = record.offset
            self._last[partition] = offset
            try:
                message = decode_value(record.value)
            except WireError as exc:
                sink.skip(partition, offset)
                self._undecodable(partition, offset, exc)
                continue
            try:
                receive_epoch: float | None = parse_time(message.receive_time)
            except WireError:
                receive_epoch = None
            live = offset >= target
            headers = record.headers
            traced = live and header_value(headers, "traceparent") is not None
            trace_id = None
            if traced and self._trace_id_in_meta:
                traceparent = header_value(headers, "traceparent") or b""
                parts = traceparent.split(b"-")
                trace_id = parts[1].decode("ascii", "replace") if len(parts) > 1 else None
            publication = make_publication(
                message, partition, offset, record.timestamp / 1000, trace_id
            )
            if not traced:
                sink.publish(publication, receive_epoch, live)
                continue
            # Only traced publishes pay for spans: one consumer span, one fan-out span.
            context = propagate.extract(headers, getter=_GETTER)
            with (
                tracer.start_as_current_span(
                    f"{tp.topic} process",
                    context=context,
                    kind=SpanKind.CONSUMER,
                    attributes={
                        "messaging.system": "kafka",
                        "messaging.operation.type": "process",
                        "messaging.destination.name": tp.topic,
                        "messaging.destination.partition.id": str(partition),
                        "messaging.kafka.offset": offset,
                        "messaging.message.id": message.message_id,
                    },
                ),
                tracer.start_as_current_span(
                    "roomcast.fanout",
                    attributes={
                        "messaging.destination.name": tp.topic,
                        "roomcast.room": message.room or "",
                        "roomcast.topic": message.topic or "",
                    },
                ) as span,
            ):
                recipients = sink.publish(publication, receive_epoch, live)
                span.set_attribute("roomcast.recipients", recipients)

    def _undecodable(self, partition: int, offset: int, exc: Exception) -> None:
        self._metrics.undecodable.inc()
        self._undecodable_since_log += 1
        now = time.monotonic()
        if now - self._undecodable_logged_at >= UNDECODABLE_LOG_EVERY:
            log.warning(
                "skipping records that are not roomcast messages",
                extra={
                    "partition": partition,
                    "offset": offset,
                    "error": str(exc),
                    "skipped_since_last_log": self._undecodable_since_log,
                },
            )
            self._undecodable_logged_at = now
            self._undecodable_since_log = 0
