"""RecordSink on Kafka: one idempotent aiokafka producer, replaced when it gets stuck.

Why the fence: with ``enable_idempotence=True`` aiokafka never expires a batch on a
retriable error (its sender retries "until we succeed", so sequence numbers stay
valid), whatever ``request_timeout_ms`` says. While the broker is away a send future
therefore never resolves, and the record sits in the accumulator to be delivered
whenever the broker comes back. Answering 503 on our own timer would then lie.
So when a record is not acknowledged within the bound, the producer is fenced:
its sender stops (requests already on the wire finish first, bounded by
``request_timeout_ms``), everything it still holds is failed, and it is discarded.
Only then is the send future's outcome read, so a failure really means "not
published"; a fresh producer is started in the background. The one case no client
can rule out (a broker that took the record and died before answering) is reported
as an unknown outcome instead (see kafka_inflight).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2
from opentelemetry import trace
from opentelemetry.propagate import inject
from opentelemetry.trace import SpanKind, Status, StatusCode

from roomcast_core import wire
from roomcast_core.kafka_link import kafka_options, start_client
from roomcast_core.settings import KafkaSettings
from roomcast_publisher.adapters.aiokafka_internals import abandon, append_now, sender_died
from roomcast_publisher.adapters.kafka_inflight import InFlightTracker
from roomcast_publisher.adapters.kafka_topic import ensure_topic
from roomcast_publisher.domain.ports import Delivery, OutcomeUnknown, SinkUnavailable
from roomcast_publisher.observe import record_trace

log = logging.getLogger(__name__)
_PARTITION_CACHE = 100_000  # keys remembered before the cache starts afresh
NOT_CONNECTED_YET = "not connected yet"


def producer_options(settings: KafkaSettings, max_record_bytes: int) -> dict[str, Any]:
    """The producer's configuration (the benchmark's bare-producer anchor uses it too)."""
    return {
        **kafka_options(settings),
        "client_id": "roomcast-publisher",
        "acks": "all",
        "enable_idempotence": True,
        "request_timeout_ms": int(settings.request_timeout / 2 * 1000),
        "max_batch_size": max(16384, max_record_bytes),
        "max_request_size": max(1 << 20, 2 * max_record_bytes),
    }


class KafkaSink:
    """Keeps a producer connected (run()) and turns messages into acknowledged records."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        max_record_bytes: int = 1 << 20,
        probe_interval: float = 1.0,
        on_fence: Callable[[], None] = lambda: None,
        traced: bool = True,
    ) -> None:
        self._settings = settings
        self._topic = settings.topic
        # Half the produce budget for the acknowledgement, half for a fence to let
        # in-flight requests finish: the whole answer stays within request_timeout.
        self._ack_timeout = settings.request_timeout / 2
        self._max_record_bytes = max_record_bytes
        self._probe_interval = probe_interval
        self._on_fence = on_fence
        self._producer: AIOKafkaProducer | None = None
        self._topic_ready = False
        self._up = False
        self._problem: str | None = NOT_CONNECTED_YET
        self._fences: dict[int, asyncio.Task[None]] = {}
        self._in_flight = InFlightTracker()
        self._partition_set: set[int] = set()
        self._partition_cache: dict[bytes, TopicPartition] = {}
        self._route: Callable[[bytes], TopicPartition | None] = lambda _: None
        self._ack_watch = AckWatch(self._ack_timeout)
        self._tracer = trace.get_tracer("roomcast_publisher")
        self._traced = traced  # False: no span, the request's record_trace() context

    # ---- state -----------------------------------------------------------

    @property
    def up(self) -> bool:
        return self._up and self._producer is not None

    async def readiness(self) -> str | None:
        """Health check: None when records can be produced, else why not."""
        return None if self.up else (self._problem or "kafka unreachable")

    # ---- connection loop ---------------------------------------------------

    async def run(self) -> None:
        """Create the topic, start a producer and probe the broker, forever."""
        while True:
            await self._step()
            await asyncio.sleep(self._probe_interval)

    async def _step(self) -> None:
        try:
            if not self._topic_ready:
                await ensure_topic(self._settings, self._settings.request_timeout)
                self._topic_ready = True
            producer = self._producer
            if producer is not None and sender_died(producer):
                # A fatal producer error (e.g. out-of-order sequence) ends its sender
                # for good; records would only fail from now on. Start afresh.
                await self._fence(producer, "producer sender stopped")
                producer = None
            if producer is None:
                producer = await self._start_producer()
                self._producer = producer
            async with asyncio.timeout(self._ack_timeout):
                reachable = bool(await producer.client.force_metadata_update())
            if producer is self._producer:
                self._set_state(reachable, None if reachable else "broker does not answer")
        except Exception as exc:  # the loop must outlive any failure; it retries
            self._set_state(False, f"{type(exc).__name__}: {exc}")

    def _set_state(self, up: bool, problem: str | None) -> None:
        if up and not self._up:
            log.info("kafka link up", extra={"topic": self._topic})
        elif not up and (self._up or self._problem == NOT_CONNECTED_YET):
            # Also the first failure of a link that never came up: a refused password
            # must show in the log at start, not only in /readyz.
            log.warning("kafka link down", extra={"reason": problem})
        self._up = up
        self._problem = problem

    async def _start_producer(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(**producer_options(self._settings, self._max_record_bytes))
        self._in_flight.install(producer)
        try:
            async with asyncio.timeout(self._settings.request_timeout):
                await start_client(producer, self._settings)
                await producer.partitions_for(self._topic)  # warm metadata: sends never wait
        except BaseException:
            await abandon(producer, "producer did not start")
            raise
        return producer

    # ---- producing -----------------------------------------------------------

    async def produce(self, messages: Sequence[wire.Message]) -> list[Delivery]:
        producer = self._producer
        if producer is None or not self._up:
            refused = SinkUnavailable(f"kafka is unreachable ({self._problem or 'reconnecting'})")
            return [refused] * len(messages)
        if not self._traced:
            return await self._produce(producer, messages, record_trace())
        # One PRODUCER span per call (a batch is one "send"); every record carries its context.
        span = self._tracer.start_span(
            f"send {self._topic}",
            kind=SpanKind.PRODUCER,
            attributes=self._span_attributes(messages),
        )
        try:
            carrier: dict[str, str] = {}
            inject(carrier, context=trace.set_span_in_context(span))
            trace_headers = [(name, value.encode()) for name, value in carrier.items()]
            deliveries = await self._produce(producer, messages, trace_headers)
            failure = next((d for d in deliveries if not isinstance(d, str)), None)
            if failure is not None:
                _fail_span(span, failure)
            elif len(deliveries) == 1 and isinstance(deliveries[0], str):
                partition, _, offset = deliveries[0].partition(":")
                span.set_attribute("messaging.destination.partition.id", partition)
                span.set_attribute("messaging.kafka.offset", int(offset))
            return deliveries
        finally:
            span.end()

    async def _produce(
        self,
        producer: AIOKafkaProducer,
        messages: Sequence[wire.Message],
        trace_headers: list[tuple[str, bytes]],
    ) -> list[Delivery]:
        futures: list[asyncio.Future[Any]] = []
        refused_rest: SinkUnavailable | None = None
        deadline = asyncio.get_running_loop().time() + self._ack_timeout
        route = self._router(producer)
        try:
            for message in messages:
                key = wire.encode_key(message)
                value = wire.encode_value(message)
                headers = wire.encode_headers(message, trace_headers)
                tp = route(key)
                future = append_now(producer, tp, key, value, headers) if tp else None
                if future is None:
                    # The producer would wait (a full batch, no metadata yet, closing):
                    # its own send(), bounded. Cancelling send() itself (not its future)
                    # keeps the record out of the producer. A record it does not take
                    # fails the rest of the call too, so a later record of the same key
                    # is never published after an earlier refusal.
                    async with asyncio.timeout_at(deadline):
                        future = await producer.send(
                            self._topic,
                            value=value,
                            key=key,
                            partition=tp.partition if tp else None,
                            headers=headers,
                        )
                futures.append(future)
        except (KafkaError, TimeoutError) as exc:
            refused_rest = SinkUnavailable(f"kafka did not take the record: {exc!r}")
        except Exception as exc:  # a record aiokafka rejects before taking it
            refused_rest = SinkUnavailable(f"kafka did not take the record: {exc!r}")
        deliveries = await self._settle(producer, futures)
        if refused_rest is not None:
            deliveries.extend([refused_rest] * (len(messages) - len(futures)))
        return deliveries

    def _router(self, producer: AIOKafkaProducer) -> Callable[[bytes], TopicPartition | None]:
        """Kafka's default partition for a key (murmur2 of it, as aiokafka would pick),
        computed once per key: rooms repeat, and the pure-Python hash costs more than the
        rest of a record's hand-over. None (aiokafka decides) while metadata is missing."""
        known = producer.client.cluster.partitions_for_topic(self._topic)
        if not known:
            return lambda _: None
        if known == self._partition_set and len(self._partition_cache) <= _PARTITION_CACHE:
            return self._route
        self._partition_set = known
        partitions = [TopicPartition(self._topic, p) for p in sorted(known)]
        cache: dict[bytes, TopicPartition] = {}
        self._partition_cache = cache

        def route(key: bytes) -> TopicPartition:
            found = cache.get(key)
            if found is None:
                found = cache[key] = partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]
            return found

        self._route = route
        return route

    def _span_attributes(self, messages: Sequence[wire.Message]) -> dict[str, str | int]:
        attributes: dict[str, str | int] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.destination.name": self._topic,
            "messaging.client.id": "roomcast-publisher",
        }
        if len(messages) == 1:
            attributes["messaging.message.id"] = messages[0].message_id
            attributes["messaging.kafka.message.key"] = messages[0].key
        else:
            attributes["messaging.batch.message_count"] = len(messages)
        return attributes

    async def _settle(
        self, producer: AIOKafkaProducer, futures: list[asyncio.Future[Any]]
    ) -> list[Delivery]:
        """Wait for every acknowledgement at once; fence the producer if any is late."""
        try:
            if not await _all_done(futures, self._ack_watch):
                await self._fence(producer, f"no acknowledgement within {self._ack_timeout:g}s")
            # After a fence every future is resolved: a failure now means "never
            # published", unless a broker took the record and never answered.
            return [self._delivery(future) for future in futures]
        finally:
            for future in futures:
                self._in_flight.forget(future)

    def _delivery(self, future: asyncio.Future[Any]) -> Delivery:
        if not future.done() or future.cancelled():
            return OutcomeUnknown("the producer let go of the record without an answer")
        exc = future.exception()
        if exc is None:
            metadata = future.result()
            return wire.position(metadata.partition, metadata.offset)
        if self._in_flight.is_unknown(future):
            return OutcomeUnknown(f"{exc!r}")
        return SinkUnavailable(f"kafka did not acknowledge: {exc!r}")

    async def _fence(self, producer: AIOKafkaProducer, reason: str) -> None:
        if producer is self._producer:
            self._producer = None
            self._set_state(False, f"producer fenced: {reason}")
        task = self._fences.get(id(producer))
        if task is None:
            log.warning("fencing kafka producer", extra={"reason": reason})
            self._on_fence()
            task = asyncio.create_task(abandon(producer, reason))
            self._fences[id(producer)] = task
            task.add_done_callback(lambda _: self._fences.pop(id(producer), None))
        await asyncio.shield(task)

    async def close(self) -> None:
        """Deliver what is pending within the bound, fail the rest, disconnect."""
        producer, self._producer = self._producer, None
        self._up = False
        if producer is not None:
            with contextlib.suppress(KafkaError, TimeoutError):
                async with asyncio.timeout(self._ack_timeout):
                    await producer.flush()
            await abandon(producer, "publisher shutting down")
        if self._fences:
            await asyncio.gather(*self._fences.values(), return_exceptions=True)


async def _all_done(futures: Sequence[asyncio.Future[Any]], watch: AckWatch) -> bool:
    """Whether every future resolved within the watch's bound. One counter for all of
    them: cheaper than asyncio.wait's sets and per-future bookkeeping for a thousand
    records, and no timer of its own (see AckWatch)."""
    remaining = sum(1 for future in futures if not future.done())
    if not remaining:
        return True
    everything: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def one_done(_: asyncio.Future[Any]) -> None:
        nonlocal remaining
        remaining -= 1
        if not remaining and not everything.done():
            everything.set_result(True)

    for future in futures:
        if not future.done():
            future.add_done_callback(one_done)
    watch.watch(everything)
    return await everything


class AckWatch:
    """Answers False to waiters not resolved within `seconds`, with one loop timer for
    all of them: every wait has the same bound, so deadlines come in the order waits
    begin. A timer per request (asyncio.timeout) cost as much as a tenth of a
    single-message request."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._waits: deque[tuple[float, asyncio.Future[bool]]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def watch(self, waiter: asyncio.Future[bool]) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new loop (tests): nothing of the old one holds
            self._waits.clear()
            self._timer = None
            self._loop = loop
        waits = self._waits
        while waits and waits[0][1].done():  # answered in time: forget them early
            waits.popleft()
        when = loop.time() + self._seconds
        waits.append((when, waiter))
        if self._timer is None:
            self._timer = loop.call_at(when, self._expire)

    def _expire(self) -> None:
        loop = self._loop
        assert loop is not None
        now = loop.time()
        waits = self._waits
        while waits:
            when, waiter = waits[0]
            if not waiter.done():
                if when > now:
                    break
                waiter.set_result(False)
            waits.popleft()
        self._timer = loop.call_at(waits[0][0], self._expire) if waits else None


def _fail_span(span: trace.Span, exc: BaseException) -> None:
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, str(exc)))
