"""The Prometheus metrics move as traffic passes through publisher and edge."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import websockets
from prometheus_client.parser import text_string_to_metric_families

from roomcast_core.tokens import TokenIssuer
from tests.conftest import Infra, ServiceFactory

SECRET = "test-secret-0123456789abcdefghijklmnop"
MESSAGES = 12


async def _scrape(session: aiohttp.ClientSession, base: str) -> dict[str, float]:
    """Every sample as `name{label="v",...}` → value."""
    async with session.get(f"{base}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("roomcast_"), f"metric {family.name} lacks the prefix"
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


async def test_metrics_follow_traffic(
    infra: Infra, topic: str, start_service: ServiceFactory
) -> None:
    env = infra.env(topic)
    publisher = start_service("publisher", env)
    edge = start_service("edge", env)
    token = TokenIssuer("HS256", SECRET).issue("u", "d", 300).token
    url = edge.url.replace("http://", "ws://") + f"/ws?token={token}&roomIds=m1"
    async with aiohttp.ClientSession() as session:
        before_pub = await _scrape(session, publisher.url)
        before_edge = await _scrape(session, edge.url)
        assert before_edge["roomcast_edge_connections"] == 0
        async with websockets.connect(url) as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), 20))["action"] == "connected"
            during = await _scrape(session, edge.url)
            assert during["roomcast_edge_connections"] == 1
            for i in range(MESSAGES):
                async with session.post(
                    f"{publisher.url}/v1/messages", json={"room": "m1", "payload": i}
                ) as response:
                    assert response.status == 202
            for _ in range(MESSAGES):
                await asyncio.wait_for(ws.recv(), 20)
            # A bad request is counted with its status.
            async with session.post(f"{publisher.url}/v1/messages", data=b"{") as response:
                assert response.status == 400
            after_edge = await _scrape(session, edge.url)
        after_pub = await _scrape(session, publisher.url)

    def grew(after: dict[str, float], before: dict[str, float], name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    ok = 'roomcast_publisher_requests_total{endpoint="/v1/messages",status="202"}'
    bad = 'roomcast_publisher_requests_total{endpoint="/v1/messages",status="400"}'
    assert grew(after_pub, before_pub, ok) == MESSAGES
    assert grew(after_pub, before_pub, bad) == 1
    assert grew(after_pub, before_pub, "roomcast_publisher_records_produced_total") == MESSAGES
    assert grew(after_pub, before_pub, "roomcast_publisher_produce_seconds_count") == MESSAGES

    assert grew(after_edge, before_edge, "roomcast_edge_messages_in_total") == MESSAGES
    assert grew(after_edge, before_edge, "roomcast_edge_deliveries_total") == MESSAGES
    assert (
        grew(after_edge, before_edge, "roomcast_edge_publish_to_deliver_seconds_count") == MESSAGES
    )
    assert grew(after_edge, before_edge, "roomcast_edge_fanout_seconds_count") == MESSAGES
    assert after_edge["roomcast_edge_asyncio_tasks"] > 0
