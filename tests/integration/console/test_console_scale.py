"""The console's API with 50 edges and 10 000 rooms: every edge listed, rooms paged and searched."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio
import redis.asyncio as aioredis

from roomcast_core.edge_reports import REPORTS_KEY, history_key
from tests.conftest import Infra
from tests.integration.console.conftest import (
    EDGES,
    ROOMS,
    ConsoleStack,
    Crowd,
    admin_get,
    seeded_crowd,
)


@pytest_asyncio.fixture
async def crowd(infra: Infra) -> AsyncIterator[Crowd]:
    async with seeded_crowd(infra.redis_url) as seeded:
        yield seeded


async def test_fifty_edges_and_ten_thousand_rooms(
    console_stack: ConsoleStack, crowd: Crowd
) -> None:
    tag, edges = crowd.tag, crowd.edges
    base = console_stack.publisher.url
    async with aiohttp.ClientSession() as session:
        status, body = await admin_get(session, base + "/v1/admin/edges")
        assert status == 200, body
        listed = {e["edge_id"]: e for e in body["edges"]}
        assert set(edges) <= set(listed)
        assert listed[edges[7]]["rooms"] == 200

        page = ",".join(edges[:20])
        status, body = await admin_get(session, base + f"/v1/admin/edges/history?edge_id={page}")
        assert status == 200, body
        assert {e["edge_id"] for e in body["edges"]} == set(edges[:20])
        connections = body["columns"].index("connections")
        assert max(row[connections] for row in body["totals"]) >= 10 * EDGES

        # A search finds one room among 10 000, following the cursor page by page.
        wanted = f"{tag}-4321"
        found: list[dict[str, Any]] = []
        cursor: str | None = "0"
        for _ in range(200):
            status, body = await admin_get(
                session, base + f"/v1/admin/rooms?q={wanted}&cursor={cursor}"
            )
            assert status == 200, body
            found += body["rooms"]
            cursor = body["cursor"]
            if cursor is None:
                break
        assert found == [{"room": wanted, "connections": 1, "users": 1}]

        # Paging through everything with the tag: pages of at most `limit`, all rooms seen.
        seen: set[str] = set()
        cursor = "0"
        pages = 0
        while cursor is not None:
            status, body = await admin_get(
                session, base + f"/v1/admin/rooms?q={tag}-&limit=200&cursor={cursor}"
            )
            assert status == 200, body
            assert len(body["rooms"]) <= 200
            seen.update(r["room"] for r in body["rooms"])
            cursor = body["cursor"]
            pages += 1
            assert pages < 1000
        assert len(seen) == ROOMS


async def test_an_edge_silent_for_ten_seconds_is_gone(
    console_stack: ConsoleStack, infra: Infra
) -> None:
    tag = uuid.uuid4().hex[:6]
    client = aioredis.from_url(infra.redis_url)
    now_ms = int(time.time() * 1000)
    reports = {f"quiet{tag}": now_ms - 11_000, f"recent{tag}": now_ms - 5_000}
    try:
        for edge, seen_at in reports.items():
            report = json.dumps({"edge_id": edge, "connections": 1, "seen_at": seen_at})
            await client.zadd(REPORTS_KEY, {edge: seen_at})
            await client.lpush(history_key(edge), report)
        async with aiohttp.ClientSession() as session:
            status, body = await admin_get(session, console_stack.publisher.url + "/v1/admin/edges")
        assert status == 200, body
        listed = {e["edge_id"] for e in body["edges"]}
        assert f"recent{tag}" in listed
        assert f"quiet{tag}" not in listed
    finally:
        for edge in reports:
            await client.zrem(REPORTS_KEY, edge)
            await client.delete(history_key(edge))
        await client.aclose()
