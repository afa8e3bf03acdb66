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
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError
from opentelemetry import trace
from opentelemetry.propagate import inject
from opentelemetry.trace import SpanKind, Status, StatusCode

from roomcast_core import wire
from roomcast_core.settings import KafkaSettings
from roomcast_publisher.adapters.kafka_inflight import InFlightTracker
from roomcast_publisher.adapters.kafka_topic import ensure_topic
from roomcast_publisher.domain.ports import Delivery, OutcomeUnknown, SinkUnavailable

log = logging.getLogger(__name__)


class KafkaSink:
    """Keeps a producer connected (run()) and turns messages into acknowledged records."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        max_record_bytes: int = 1 << 20,
        probe_interval: float = 1.0,
        on_fence: Callable[[], None] = lambda: None,
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
        self._problem: str | None = "not connected yet"
        self._fences: dict[int, asyncio.Task[None]] = {}
        self._in_flight = InFlightTracker()
        self._tracer = trace.get_tracer("roomcast_publisher")

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
            if producer is not None and _sender_died(producer):
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
        if up != self._up:
            if up:
                log.info("kafka link up", extra={"topic": self._topic})
            else:
                log.warning("kafka link down", extra={"reason": problem})
        self._up = up
        self._problem = problem

    async def _start_producer(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._settings.bootstrap_servers,
            client_id="roomcast-publisher",
            acks="all",
            enable_idempotence=True,
            request_timeout_ms=int(self._ack_timeout * 1000),
            max_batch_size=max(16384, self._max_record_bytes),
            max_request_size=max(1 << 20, 2 * self._max_record_bytes),
        )
        self._in_flight.install(producer)
        try:
            async with asyncio.timeout(self._settings.request_timeout):
                await producer.start()
                await producer.partitions_for(self._topic)  # warm metadata: sends never wait
        except BaseException:
            await _abandon(producer, "producer did not start")
            raise
        return producer

    # ---- producing -----------------------------------------------------------

    async def enqueue(self, message: wire.Message) -> Delivery:
        producer = self._producer
        if producer is None or not self._up:
            raise SinkUnavailable(f"kafka is unreachable ({self._problem or 'reconnecting'})")
        key = wire.encode_key(message)
        span = self._tracer.start_span(
            f"send {self._topic}",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.operation.name": "send",
                "messaging.destination.name": self._topic,
                "messaging.message.id": message.message_id,
                "messaging.kafka.message.key": key.decode(),
                "messaging.client.id": "roomcast-publisher",
            },
        )
        carrier: dict[str, str] = {}
        inject(carrier, context=trace.set_span_in_context(span))
        trace_headers = [(name, value.encode()) for name, value in carrier.items()]
        try:
            # Cancelling send() itself (not its future) keeps the record out of the producer.
            async with asyncio.timeout(self._ack_timeout):
                future = await producer.send(
                    self._topic,
                    value=wire.encode_value(message),
                    key=key,
                    headers=wire.encode_headers(message, trace_headers),
                )
        except (KafkaError, TimeoutError) as exc:
            _fail_span(span, exc)
            span.end()
            raise SinkUnavailable(f"kafka did not take the record: {exc!r}") from exc
        return self._settle(producer, future, span)

    async def _settle(
        self, producer: AIOKafkaProducer, future: asyncio.Future[Any], span: trace.Span
    ) -> str:
        try:
            done, _ = await asyncio.wait({future}, timeout=self._ack_timeout)
            if not done:
                await self._fence(producer, f"no acknowledgement within {self._ack_timeout:g}s")
            # After a fence the future is resolved: a failure now means "never published",
            # unless a broker took the record and never answered.
            try:
                metadata = future.result()
            except KafkaError as exc:
                if self._in_flight.is_unknown(future):
                    raise OutcomeUnknown(f"{exc!r}") from exc
                raise SinkUnavailable(f"kafka did not acknowledge: {exc!r}") from exc
            span.set_attribute("messaging.destination.partition.id", str(metadata.partition))
            span.set_attribute("messaging.kafka.offset", metadata.offset)
            return wire.position(metadata.partition, metadata.offset)
        except (SinkUnavailable, OutcomeUnknown) as exc:
            _fail_span(span, exc)
            raise
        finally:
            self._in_flight.forget(future)
            span.end()

    async def _fence(self, producer: AIOKafkaProducer, reason: str) -> None:
        if producer is self._producer:
            self._producer = None
            self._set_state(False, f"producer fenced: {reason}")
        task = self._fences.get(id(producer))
        if task is None:
            log.warning("fencing kafka producer", extra={"reason": reason})
            self._on_fence()
            task = asyncio.create_task(_abandon(producer, reason))
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
            await _abandon(producer, "publisher shutting down")
        if self._fences:
            await asyncio.gather(*self._fences.values(), return_exceptions=True)


def _fail_span(span: trace.Span, exc: BaseException) -> None:
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, str(exc)))


def _sender_died(producer: AIOKafkaProducer) -> bool:
    task = producer._sender.sender_task
    return task is not None and task.done()


async def _abandon(producer: AIOKafkaProducer, reason: str) -> None:
    """Make sure a producer never sends again and fail every record it still holds.

    aiokafka has no public way to give up on pending records, hence the private
    attributes; the fault-injection test breaks loudly if they change.
    """
    sender = producer._sender
    task = sender.sender_task if sender is not None else None
    if task is not None and not task.done():
        task.cancel()
        # The sender awaits its in-flight produce requests before it ends; their
        # answers (success or failure) still resolve their records.
        await asyncio.wait({task})
    accumulator = producer._message_accumulator
    held = [batch for queue in accumulator._batches.values() for batch in queue]
    held += list(accumulator._pending_batches)
    for batch in held:
        # A retried batch left the pending set when it was queued again; aiokafka's
        # done-callback removes it from there once more, so put it back first.
        accumulator._pending_batches.add(batch)
    accumulator.fail_all(KafkaTimeoutError(reason))
    for batch in held:
        for waiter in (batch.future, batch._drain_waiter):
            if waiter.done() and not waiter.cancelled():
                waiter.exception()  # retrieved: nobody else will look at these
    with contextlib.suppress(KafkaError, OSError, TimeoutError):
        async with asyncio.timeout(5):
            await producer.stop()
