"""Cost and failure of presence: one round trip for a storm of changes, and Redis
going away degrades presence without holding up connects, pushes or the webhooks'
receivers."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from roomcast_core.presence_store import Outlets, PresenceStore
from roomcast_core.tokens import TokenClaims
from roomcast_edge.presence import BatchedPresence, PresenceMetrics
from roomcast_harness.redis_server import RedisServer
from roomcast_harness.services import ServiceProcess
from tests.conftest import Infra
from tests.integration.edge.conftest import (
    WAIT,
    Publisher,
    connect,
    http_get,
    message,
    metric,
    recv_json,
    request,
    token,
)
from tests.integration.presence.conftest import Receiver, eventually, stack_env


class _Client:
    """A session as presence sees it."""

    def __init__(self, user: str) -> None:
        self.id = uuid.uuid4().hex
        self.claims = TokenClaims(user, "device", "jti", 0, 2**31)


async def test_a_connect_storm_costs_one_round_trip(redis_url: str) -> None:
    room = f"storm-{uuid.uuid4().hex[:10]}"
    client = aioredis.from_url(redis_url)
    registry = CollectorRegistry()
    presence = BatchedPresence(
        PresenceStore(client),
        ttl=30,
        max_members=10,
        outlets=Outlets(),
        metrics=PresenceMetrics(registry),
    )
    try:
        storm = [_Client(f"user-{n % 2500}") for n in range(10_000)]
        for member in storm:  # one loop turn: nothing awaited in between
            presence.update(member, frozenset({room}))
        body = await asyncio.wait_for(presence.query(room), WAIT)
        assert (body["connections"], body["users"]) == (10_000, 2500)
        assert len(body["members"]) == 10
        assert registry.get_sample_value("roomcast_edge_presence_flushes_total") == 1
        for member in storm:
            presence.update(member, frozenset())
        body = await asyncio.wait_for(presence.query(room), WAIT)
        assert (body["connections"], body["users"]) == (0, 0)
        assert registry.get_sample_value("roomcast_edge_presence_flushes_total") == 2
    finally:
        await presence.close(WAIT)
        await client.aclose()


def _readyz(edge: ServiceProcess) -> tuple[int, list[str]]:
    status, body = http_get(edge.url + "/readyz")
    return status, json.loads(body).get("reasons", [])


async def test_redis_away_degrades_presence_only(
    infra: Infra,
    topic: str,
    tmp_path: Path,
    own_redis: RedisServer,
    publisher: Publisher,
    receiver: Receiver,
) -> None:
    room = f"outage-{uuid.uuid4().hex[:10]}"
    env = {
        **stack_env(infra, topic, f"roomcast:test:outbox:{uuid.uuid4().hex[:8]}", receiver),
        "ROOMCAST_REDIS__URL": own_redis.url,
        "ROOMCAST_EDGE__PRESENCE_TTL": "2",
    }
    edge = ServiceProcess("edge", env, tmp_path, name="edge")
    edge.start()
    try:
        before, _ = await connect(edge, token=token(subject="before"), roomIds=room)
        assert (await request(before, "presence", {"room": room}))["presence"]["users"] == 1
        await asyncio.to_thread(own_redis.stop)

        # Connects, joins and pushes go on; presence answers fail, at once.
        during, _ = await connect(edge, token=token(subject="during"), roomIds=room)
        msg = message("while Redis is away", room=room)
        await publisher.send(msg)
        for ws in (before, during):
            assert (await recv_json(ws))["meta"]["message_id"] == msg.message_id
        reply = await request(during, "presence", {"room": room})
        assert reply["status"] == "fail"
        assert "unavailable" in reply["error_message"]
        await eventually(lambda: any("presence" in r for r in _readyz(edge)[1]))
        assert _readyz(edge)[0] == 503
        assert metric(edge, "roomcast_edge_presence_degraded") == 1
        assert metric(edge, "roomcast_edge_presence_pending") >= 1

        # Back (empty: it kept nothing): the edge writes its members again.
        await asyncio.to_thread(own_redis.start)

        async def whole() -> bool:
            reply = await request(during, "presence", {"room": room}, request_id="again")
            return bool(reply["status"] == "ok" and reply["presence"]["users"] == 2)

        deadline = asyncio.get_running_loop().time() + WAIT
        while not await whole():
            assert asyncio.get_running_loop().time() < deadline, "presence not restored"
            await asyncio.sleep(0.2)
        await eventually(lambda: _readyz(edge)[0] == 200)
        assert metric(edge, "roomcast_edge_presence_degraded") == 0
        await before.close()
        await during.close()
    finally:
        edge.stop()
