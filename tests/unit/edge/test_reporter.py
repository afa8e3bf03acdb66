"""An edge's report: gauges as /metrics has them, rates and p99 since the last report."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry

from roomcast_core.edge_reports import EdgeHistory, totals
from roomcast_edge.metrics import EdgeMetrics
from roomcast_edge.reporter import figures, quantile, read_registry


def test_quantile_interpolates_inside_its_bucket() -> None:
    buckets = [(0.01, 50.0), (0.1, 100.0), (math.inf, 100.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.01)
    assert quantile(0.99, buckets) == pytest.approx(0.01 + 0.09 * 49 / 50)
    assert quantile(0.99, [(0.1, 0.0), (math.inf, 0.0)]) == 0.0
    assert quantile(0.99, [(0.1, 0.0), (math.inf, 10.0)]) == 0.1  # beyond the last bound


def test_figures_come_from_the_registry() -> None:
    registry = CollectorRegistry()
    metrics = EdgeMetrics(registry)
    metrics.connections.set(3)
    metrics.subscriptions.set(2)
    before = read_registry(registry, at=10.0)
    metrics.messages_in.inc(20)
    metrics.deliveries.inc(60)
    for _ in range(99):
        metrics.publish_to_deliver.observe(0.003)
    metrics.publish_to_deliver.observe(2.0)
    after = read_registry(registry, at=12.0)
    report = figures(before, after)
    assert report["connections"] == 3
    assert report["subscriptions"] == 2
    assert report["messages_in_per_s"] == 10
    assert report["deliveries_per_s"] == 30
    assert report["messages_in_total"] == 20
    assert 1 <= report["p99_ms"] <= 5
    # The next report: nothing new, no rate, no latency.
    later = read_registry(registry, at=14.0)
    quiet = figures(after, later)
    assert quiet["messages_in_per_s"] == 0
    assert quiet["p99_ms"] == 0


def test_totals_add_every_edge_once_per_step() -> None:
    # [seen_at, connections, rooms, subscriptions, in/s, deliveries/s, p99, in total, deliveries total]
    a = EdgeHistory(
        "a",
        [
            [1000, 1, 1, 0, 1, 1, 5, 1, 1],
            [1900, 2, 1, 0, 1, 1, 7, 2, 2],
            [3000, 2, 1, 0, 0, 0, 0, 2, 2],
        ],
    )
    b = EdgeHistory("b", [[1500, 3, 2, 1, 2, 2, 9, 4, 4]])
    rows = totals([a, b])
    assert rows[0] == [0.0, 5, 3, 1, 3, 3, 9, 6, 6]  # a's last report of the step, and b's
    assert rows[1] == [2000.0, 2, 1, 0, 0, 0, 0, 2, 2]
