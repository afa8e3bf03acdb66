"""The publisher's Prometheus metrics, registered on the app's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class PublisherMetrics:
    """Also the domain's PublishObserver."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "roomcast_publisher_requests",
            "HTTP requests by endpoint and status",
            ["endpoint", "status"],
            registry=registry,
        )
        self.records_produced = Counter(
            "roomcast_publisher_records_produced",
            "records acknowledged by Kafka",
            registry=registry,
        )
        self.produce_seconds = Histogram(
            "roomcast_publisher_produce_seconds",
            "time from handing a request's records to the producer to their acknowledgement",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.failures = Counter(
            "roomcast_publisher_failures",
            "messages not published, by reason",
            ["reason"],
            registry=registry,
        )

        self.fences = Counter(
            "roomcast_publisher_producer_fences",
            "producers given up on because records were not acknowledged in time",
            registry=registry,
        )

    def fenced(self) -> None:
        self.fences.inc()

    def produced(self, count: int, seconds: float) -> None:
        self.records_produced.inc(count)
        self.produce_seconds.observe(seconds)

    def failed(self, reason: str) -> None:
        self.failures.labels(reason=reason).inc()
