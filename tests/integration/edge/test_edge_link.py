"""A running edge answers on the edge link, and its connection ids name it."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from roomcast_core.edge_link import EdgeLinkClient, edge_of
from tests.conftest import Infra
from tests.integration.edge.conftest import SharedEdge, connect, token


async def test_an_edge_answers_on_the_link_for_its_connections(
    infra: Infra, shared_edge: SharedEdge
) -> None:
    client = aioredis.from_url(infra.redis_url)
    asker = EdgeLinkClient(client)
    listening = asyncio.create_task(asker.run())
    ws, hello = await connect(shared_edge.edge, token=token())
    try:
        edge_id = edge_of(hello["connection_id"])
        assert edge_id is not None, hello["connection_id"]
        reply = await asker.call(edge_id, "hello", {}, timeout=10)
        assert reply is not None
        assert reply["edge_id"] == edge_id
        assert reply["connections"] >= 1
        everyone = await asker.broadcast("hello", {}, timeout=10, expect=1)
        assert edge_id in {r["edge_id"] for r in everyone}
    finally:
        await ws.close()
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
        await client.aclose()
