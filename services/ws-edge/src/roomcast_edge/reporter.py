"""This edge's figures, read from its own metrics and reported to Redis every 2 s.

The operator console lists the edges and draws their last 15 minutes from these
reports (roomcast_core.edge_reports). Rates and the p99 are over the time since the
previous report, so they say what the edge did lately, not since it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge

from roomcast_core.edge_reports import REPORT_SECONDS, EdgeReports
from roomcast_core.health import METRICS_KEY as REGISTRY_KEY
from roomcast_core.redis_link import redis_client
from roomcast_edge.keys import EDGE_ID_KEY, NODE_KEY, SETTINGS_KEY

log = logging.getLogger(__name__)

LATENCY = "roomcast_edge_publish_to_deliver_seconds"
GAUGES = {
    "connections": "roomcast_edge_connections",
    "rooms": "roomcast_edge_rooms",
    "subscriptions": "roomcast_edge_subscriptions",
}
COUNTERS = {
    "messages_in_total": "roomcast_edge_messages_in_total",
    "deliveries_total": "roomcast_edge_deliveries_total",
}


@dataclass
class Reading:
    """One look at the registry: gauges, counters and the latency histogram's buckets."""

    at: float
    values: dict[str, float] = field(default_factory=dict)
    # cumulative counts by upper bound (seconds), +Inf last
    buckets: list[tuple[float, float]] = field(default_factory=list)


def read_registry(registry: CollectorRegistry, at: float) -> Reading:
    wanted = {metric: name for name, metric in {**GAUGES, **COUNTERS}.items()}
    reading = Reading(at)
    for family in registry.collect():
        for sample in family.samples:
            if sample.name in wanted:
                reading.values[wanted[sample.name]] = float(sample.value)
            elif sample.name == LATENCY + "_bucket":
                reading.buckets.append((float(sample.labels["le"]), float(sample.value)))
    reading.buckets.sort()
    return reading


def quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """The q-quantile of cumulative bucket counts, interpolated inside its bucket
    (as Prometheus' histogram_quantile does); 0 without observations."""
    points = list(buckets)
    if not points or points[-1][1] <= 0:
        return 0.0
    rank = q * points[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in points:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # past the last finite bucket: its bound is all we know
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def figures(previous: Reading, current: Reading) -> dict[str, float]:
    """The report: gauges now, rates and p99 (ms) since the previous reading."""
    elapsed = max(current.at - previous.at, 1e-3)
    out = {name: current.values.get(name, 0.0) for name in GAUGES}

    def rate(name: str) -> float:
        delta = current.values.get(name, 0.0) - previous.values.get(name, 0.0)
        return round(max(delta, 0.0) / elapsed, 3)

    out["messages_in_per_s"] = rate("messages_in_total")
    out["deliveries_per_s"] = rate("deliveries_total")
    before = dict(previous.buckets)
    deltas = [(bound, count - before.get(bound, 0.0)) for bound, count in current.buckets]
    out["p99_ms"] = round(quantile(0.99, deltas) * 1000, 3)
    for name in COUNTERS:
        out[name] = current.values.get(name, 0.0)
    return out


async def report_forever(
    reports: EdgeReports, edge_id: str, registry: CollectorRegistry, interval: float
) -> None:
    previous = current = read_registry(registry, time.monotonic())
    failing = False
    while True:
        try:
            await reports.write(edge_id, figures(previous, current))
        except Exception as exc:  # Redis away: the console shows this edge as gone
            if not failing:  # once per outage, not every 2 s
                log.warning("edge reports not written: %r", exc)
            failing = True
        else:
            if failing:
                log.info("edge reports written again")
            failing = False
        previous = current
        await asyncio.sleep(interval)
        current = read_registry(registry, time.monotonic())


async def reporter_ctx(app: web.Application) -> AsyncIterator[None]:
    """Reports this edge's figures while it runs; leaves the live list when it stops."""
    settings = app[SETTINGS_KEY].redis
    registry = app[REGISTRY_KEY]
    node = app[NODE_KEY]
    rooms = Gauge("roomcast_edge_rooms", "Rooms with a connection on this edge", registry=registry)
    rooms.set_function(lambda: node.hub.room_count)
    client = redis_client(
        settings, socket_timeout=settings.timeout, socket_connect_timeout=settings.timeout
    )
    reports = EdgeReports(client)
    edge_id = app[EDGE_ID_KEY]
    task = asyncio.create_task(
        report_forever(reports, edge_id, registry, REPORT_SECONDS), name="edge-reporter"
    )
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    with contextlib.suppress(Exception):
        await reports.retire(edge_id)
    await client.aclose()
