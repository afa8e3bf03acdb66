"""The edge's Prometheus metrics, all in the app's own registry."""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

DROP_REASONS = (
    "slow_consumer",
    "heartbeat_timeout",
    "token_expired",
    "revoked",
    "rate_limited",
    "drain",
    "frame_too_large",
    "stream_gap",
)


class EdgeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.connections = Gauge(
            "roomcast_edge_connections", "Open connections (WebSocket and SSE)", registry=registry
        )
        self.transport_connections = Gauge(
            "roomcast_edge_transport_connections",
            "Open connections by transport (websocket, sse); roomcast_edge_connections is their sum",
            ["transport"],
            registry=registry,
        )
        self.transport_drops = Counter(
            "roomcast_edge_transport_drops",
            "roomcast_edge_drops by transport and reason",
            ["transport", "reason"],
            registry=registry,
        )
        self.sse_posts = Counter(
            "roomcast_edge_sse_requests",
            "Requests POSTed for SSE connections, by HTTP status and where they were answered",
            ["status", "where"],
            registry=registry,
        )
        self.subscriptions = Gauge(
            "roomcast_edge_subscriptions",
            "Topic subscriptions of open connections",
            registry=registry,
        )
        self.messages_in = Counter(
            "roomcast_edge_messages_in", "Messages read from Kafka and handled", registry=registry
        )
        self.deliveries = Counter(
            "roomcast_edge_deliveries", "Pushes queued to a connection", registry=registry
        )
        self.drops = Counter(
            "roomcast_edge_drops",
            "Connections closed by the edge (and their undelivered pushes), by reason",
            ["reason"],
            registry=registry,
        )
        for reason in DROP_REASONS:
            self.drops.labels(reason)
        self.stream_gaps = Counter(
            "roomcast_edge_stream_gaps",
            "Jumps in a Redis stream's offsets: entries trimmed before this edge read them",
            registry=registry,
        )
        self.undecodable = Counter(
            "roomcast_edge_undecodable",
            "Kafka records skipped because they are not roomcast messages",
            registry=registry,
        )
        self.fanout_seconds = Histogram(
            "roomcast_edge_fanout_seconds",
            "Time to hand one message to all its recipients",
            buckets=(0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5),
            registry=registry,
        )
        self.publish_to_deliver = Histogram(
            "roomcast_edge_publish_to_deliver_seconds",
            "From the publisher's receive_time to the push being written to sockets",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.requests = Counter(
            "roomcast_edge_requests",
            "Client requests by outcome",
            ["status"],
            registry=registry,
        )
        self.recoveries = Counter(
            "roomcast_edge_recoveries",
            "Recovery attempts by outcome",
            ["recovered"],
            registry=registry,
        )
        self.rejected = Counter(
            "roomcast_edge_connects_rejected",
            "Connection attempts refused before the upgrade, by reason",
            ["reason"],
            registry=registry,
        )
        self.redis_errors = Counter(
            "roomcast_edge_redis_errors",
            "Redis calls that failed (the edge fails open for revocation and heartbeats)",
            ["call"],
            registry=registry,
        )
        self.history_bytes = Gauge(
            "roomcast_edge_history_bytes",
            "Bytes the recovery history holds (pushes plus per-message overhead)",
            registry=registry,
        )
        self.history_messages = Gauge(
            "roomcast_edge_history_messages",
            "Messages the recovery history holds",
            registry=registry,
        )
        self.archive_readers = Gauge(
            "roomcast_edge_archive_readers",
            "Readers of the bus's own log open now (history reads, deep recoveries)",
            registry=registry,
        )
        self.archive_waiting = Gauge(
            "roomcast_edge_archive_waiting",
            "History reads and deep recoveries waiting for a free reader",
            registry=registry,
        )
        self.archive_records = Counter(
            "roomcast_edge_archive_records",
            "Records read back from the bus's own log, by purpose",
            ["purpose"],
            registry=registry,
        )
        self.bus_records = Counter(
            "roomcast_edge_bus_records",
            "Records this edge read from the bus (its own share with shared ingest)",
            registry=registry,
        )
        self.routed = Counter(
            "roomcast_edge_routed",
            "Shared ingest: messages sent to the routing (out) and received from it for "
            "this edge's connections (in)",
            ["direction"],
            registry=registry,
        )
        for direction in ("in", "out"):
            self.routed.labels(direction)
        self.partitions_owned = Gauge(
            "roomcast_edge_partitions_owned",
            "Partitions of the bus this edge reads (all of them unless ingest is shared)",
            registry=registry,
        )
        self.tasks = Gauge(
            "roomcast_edge_asyncio_tasks", "Open asyncio tasks (debug)", registry=registry
        )
        self.tasks.set_function(_task_count)
        self.ingest = IngestTally(self)


class HistogramTally:
    """Observations counted per bucket in plain numbers, added to a Histogram in one go.

    prometheus_client takes a lock twice per observation; per message of the stream
    that was a tenth of the edge's CPU. This adds a whole batch's buckets at once
    through the histogram's own bucket values; on a prometheus_client laid out
    otherwise (`direct` is False, which a unit test turns into a failure) every value
    is kept and observed one by one, as before.
    """

    __slots__ = ("_bounds", "_counts", "_histogram", "_sum", "_values", "direct")

    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram
        bounds = getattr(histogram, "_upper_bounds", None)
        buckets = getattr(histogram, "_buckets", None)
        self.direct = (
            isinstance(bounds, list)
            and isinstance(buckets, list)
            and len(bounds) == len(buckets)
            and all(hasattr(b, "inc") for b in buckets)
            and hasattr(getattr(histogram, "_sum", None), "inc")
        )
        self._bounds: list[float] = list(bounds) if self.direct and bounds else []
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        self._values: list[float] = []

    def observe(self, value: float) -> None:
        if self.direct:
            # Bucket i holds the values in (bound[i-1], bound[i]], as observe() counts.
            self._counts[bisect_left(self._bounds, value)] += 1
            self._sum += value
        else:
            self._values.append(value)

    def apply(self) -> None:
        histogram = self._histogram
        if not self.direct:
            values, self._values = self._values, []
            for value in values:
                histogram.observe(value)
            return
        counts = self._counts
        buckets = histogram._buckets  # checked in __init__
        for i, count in enumerate(counts):
            if count:
                buckets[i].inc(count)
                counts[i] = 0
        histogram._sum.inc(self._sum)  # checked in __init__
        self._sum = 0.0


class IngestTally:
    """Per-message stream metrics gathered during a loop turn and applied once."""

    __slots__ = ("deliveries", "fanout", "messages", "metrics", "publish_to_deliver", "received")

    def __init__(self, metrics: EdgeMetrics) -> None:
        self.metrics = metrics
        self.messages = 0
        self.deliveries = 0
        self.fanout = HistogramTally(metrics.fanout_seconds)
        self.publish_to_deliver = HistogramTally(metrics.publish_to_deliver)
        # receive_time (epoch seconds) of each delivered message of the turn.
        self.received: list[float] = []

    def apply(self) -> None:
        metrics = self.metrics
        if self.messages:
            metrics.messages_in.inc(self.messages)
            self.messages = 0
        if self.deliveries:
            metrics.deliveries.inc(self.deliveries)
            self.deliveries = 0
        self.fanout.apply()
        received, self.received = self.received, []
        if received:
            # Taken once the turn's writes are out: the fan-out flushes before this.
            now = time.time()
            observe = self.publish_to_deliver.observe
            for epoch in received:
                observe(max(now - epoch, 0.0))
            self.publish_to_deliver.apply()


def _task_count() -> float:
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # no running loop (metrics read from another thread)
        return 0.0
