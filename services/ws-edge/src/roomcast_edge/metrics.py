"""The edge's Prometheus metrics, all in the app's own registry."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

DROP_REASONS = (
    "slow_consumer",
    "heartbeat_timeout",
    "token_expired",
    "revoked",
    "rate_limited",
    "drain",
    "frame_too_large",
)


class EdgeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.connections = Gauge(
            "roomcast_edge_connections", "Open WebSocket connections", registry=registry
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
        self.tasks = Gauge(
            "roomcast_edge_asyncio_tasks", "Open asyncio tasks (debug)", registry=registry
        )
        self.tasks.set_function(_task_count)


def _task_count() -> float:
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # no running loop (metrics read from another thread)
        return 0.0
