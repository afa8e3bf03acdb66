"""What every bus source does with a record once it has read it: the traced fan-out
and the count of records that are not roomcast messages.

The Kafka and the Redis Streams sources differ in how they read; from here on a
record is the same thing on both buses.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind

from roomcast_core.wire import Message
from roomcast_edge.domain.ports import PublicationSink
from roomcast_edge.domain.publication import Publication
from roomcast_edge.metrics import EdgeMetrics

log = logging.getLogger(__name__)
tracer = trace.get_tracer("roomcast_edge")

# A backend writing junk would otherwise log a line per record.
UNDECODABLE_LOG_EVERY = 10.0


def trace_id_of(traceparent: bytes) -> str | None:
    """The trace id field of a W3C traceparent (for `meta.trace_id`)."""
    parts = traceparent.split(b"-")
    return parts[1].decode("ascii", "replace") if len(parts) > 1 else None


def publish_traced(
    sink: PublicationSink,
    publication: Publication,
    receive_epoch: float | None,
    message: Message,
    context: Context,
    consumer_attributes: dict[str, Any],
) -> None:
    """Only traced publishes pay for spans: one consumer span, one fan-out span."""
    destination = consumer_attributes["messaging.destination.name"]
    with (
        tracer.start_as_current_span(
            f"{destination} process",
            context=context,
            kind=SpanKind.CONSUMER,
            attributes={
                **consumer_attributes,
                "messaging.operation.type": "process",
                "messaging.destination.partition.id": str(publication.partition),
                "messaging.message.id": message.message_id,
            },
        ),
        tracer.start_as_current_span(
            "roomcast.fanout",
            attributes={
                "messaging.destination.name": destination,
                "roomcast.room": message.room or "",
                "roomcast.topic": message.topic or "",
            },
        ) as span,
    ):
        recipients = sink.publish(publication, receive_epoch, True)
        span.set_attribute("roomcast.recipients", recipients)


class UndecodableLog:
    """Counts every skipped record, logs at most one line per UNDECODABLE_LOG_EVERY."""

    def __init__(self, metrics: EdgeMetrics, what: str) -> None:
        self._metrics = metrics
        self._what = what
        self._since_log = 0
        self._logged_at = 0.0

    def skipped(self, partition: int, offset: int | None, exc: Exception) -> None:
        self._metrics.undecodable.inc()
        self._since_log += 1
        now = time.monotonic()
        if now - self._logged_at >= UNDECODABLE_LOG_EVERY:
            log.warning(
                f"skipping {self._what} that are not roomcast messages",
                extra={
                    "partition": partition,
                    "offset": offset,
                    "error": str(exc),
                    "skipped_since_last_log": self._since_log,
                },
            )
            self._logged_at = now
            self._since_log = 0
