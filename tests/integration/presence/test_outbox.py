"""The outbox's bookkeeping against a real Redis: consumers of edges gone for good."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from roomcast_core.settings import load_settings
from roomcast_edge.adapters.webhook_sender import WebhookMetrics, WebhookSender, group_name


async def test_idle_consumers_without_pending_entries_are_forgotten(redis_url: str) -> None:
    stream = f"roomcast:test:outbox:{uuid.uuid4().hex[:8]}"
    url = "http://127.0.0.1:1/hook"
    settings = replace(load_settings({}).webhooks, urls=(url,), stream=stream, retry_for=0.05)
    client = aioredis.from_url(redis_url)
    group = group_name(url)
    try:
        await client.xgroup_create(stream, group, id="0", mkstream=True)
        await client.xadd(stream, {"time_ms": 1, "events": "[]"})
        # "busy" holds an entry it never acknowledged; "gone" read nothing.
        await client.xreadgroup(group, "busy", {stream: ">"}, count=1)
        await client.xreadgroup(group, "gone", {stream: ">"}, count=1)
        sender = WebhookSender(client, settings, "me", WebhookMetrics(CollectorRegistry()))
        await asyncio.sleep(0.2)
        await sender._forget_consumers(group)
        left = {c["name"].decode() for c in await client.xinfo_consumers(stream, group)}
        assert left == {"busy"}
    finally:
        await client.delete(stream)
        await client.aclose()
