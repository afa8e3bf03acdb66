"""The console's resources, made only when admin keys are set: one cleanup_ctx entry.

A Redis pool of its own (edge reports, room search), the edge link's asking side and
the tail hub. Nothing here touches the bus until a tail or a look-back asks for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge

from roomcast_core.edge_link import EdgeLinkClient
from roomcast_core.edge_reports import EdgeReports
from roomcast_core.health import METRICS_KEY as REGISTRY_KEY
from roomcast_core.redis_link import redis_client
from roomcast_core.settings import Settings
from roomcast_publisher.adapters.kafka_bus_reader import KafkaBusReader
from roomcast_publisher.adapters.redis_bus_reader import RedisBusReader
from roomcast_publisher.admin.tail_hub import TailHub
from roomcast_publisher.domain.tail import BusReader
from roomcast_publisher.keys import SETTINGS_KEY

# Tails open at once, over every operator: each holds a stream and a share of the reader.
MAX_TAILS = 8
# Look-backs reading the bus at once (each reads up to LOOKBACK records per partition).
MAX_LOOKBACKS = 2


@dataclass
class Console:
    redis: aioredis.Redis
    reports: EdgeReports
    link: EdgeLinkClient
    tails: TailHub
    reader: BusReader
    lookbacks: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_LOOKBACKS))


CONSOLE_KEY = web.AppKey("console", Console)


def bus_reader(settings: Settings) -> BusReader:
    if settings.bus.kind == "redis":
        return RedisBusReader(settings)
    return KafkaBusReader(settings.kafka)


def _gauges(registry: CollectorRegistry, tails: TailHub) -> None:
    open_tails = Gauge(
        "roomcast_publisher_admin_tails", "Live tails open in the console", registry=registry
    )
    open_tails.set_function(lambda: tails.open_tails)
    readers = Gauge(
        "roomcast_publisher_admin_tail_readers",
        "Readers of the bus the tails hold (1 while any tail is open, else 0)",
        registry=registry,
    )
    readers.set_function(lambda: int(tails.reading))


async def console_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS_KEY]
    if not settings.publisher.admin_keys:
        yield
        return
    redis = settings.redis
    client = redis_client(redis, socket_timeout=redis.timeout, socket_connect_timeout=redis.timeout)
    # No socket timeout: its connection waits on the reply channel (publishes are bounded).
    link_client = redis_client(
        redis, socket_connect_timeout=redis.timeout, health_check_interval=15
    )
    link = EdgeLinkClient(link_client)
    replies = asyncio.create_task(link.run(), name="admin-edge-link")
    tails = TailHub(lambda: bus_reader(settings), MAX_TAILS)
    _gauges(app[REGISTRY_KEY], tails)
    app[CONSOLE_KEY] = Console(client, EdgeReports(client), link, tails, bus_reader(settings))
    yield
    await tails.shutdown()
    replies.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await replies
    await link_client.aclose()
    await client.aclose()
