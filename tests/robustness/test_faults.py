"""Kafka and Redis stopped and restarted under every component running as its own process.

The private broker / Redis of these tests (own_kafka, own_redis, or the Redis that is
the bus on the Redis Streams bus) may be stopped without disturbing the session servers. Every message that got a 202 is checked in the ledger
at every client entitled to it: delivered exactly once, or reported recovered: false.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
import websockets

from roomcast_harness.kafka_broker import KafkaBroker
from roomcast_harness.redis_server import RedisServer
from roomcast_harness.services import ServiceProcess
from tests.conftest import BUSES, NO_KAFKA, Infra, ServiceFactory
from tests.integration.edge.conftest import WAIT, Publisher, connect, token
from tests.robustness.ledger import Ledger
from tests.robustness.support import publish_direct, publish_http, rewatch, watch

ROOM = "r1"


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT * 3)) as client:
        yield client


async def _status(session: aiohttp.ClientSession, url: str) -> int:
    try:
        async with session.get(url) as reply:
            return reply.status
    except (aiohttp.ClientError, TimeoutError):
        return 0


async def _until_status(
    session: aiohttp.ClientSession, url: str, status: int, timeout: float = WAIT * 6
) -> None:
    async def poll() -> None:
        while await _status(session, url) != status:
            await asyncio.sleep(0.25)

    await asyncio.wait_for(poll(), timeout)


def _start_all(procs: list[ServiceProcess]) -> None:
    for proc in procs:
        proc.launch()
    for proc in procs:
        proc.wait_ready(timeout=90)


@pytest.mark.parametrize("bus", BUSES)
async def test_bus_restart_publisher_503_then_recovers_nothing_lost_or_repeated(
    bus: str,
    request: pytest.FixtureRequest,
    topic: str,
    start_service: ServiceFactory,
    session: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    """The bus stopped and started again: the private Kafka broker, or on the Redis
    Streams bus the private Redis (with AOF) that is the bus, killed outright."""
    stop: Callable[[], None]
    start: Callable[[], None]
    if bus == "kafka":
        infra: Infra = request.getfixturevalue("infra")
        broker: KafkaBroker = request.getfixturevalue("own_kafka")
        env = {
            **infra.env(topic),
            "ROOMCAST_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "ROOMCAST_KAFKA__REQUEST_TIMEOUT": "4",
        }
        stop, start = broker.stop, broker.start
    else:
        server = RedisServer(tmp_path / "bus-redis", appendonly=True)
        server.start()
        request.addfinalizer(server.stop)
        env = Infra(server.url, NO_KAFKA, bus="redis").env(topic, ROOMCAST_REDIS__TIMEOUT="1")
        stop, start = server.kill, server.start
    publisher = start_service("publisher", env, name="publisher")
    edge = start_service("edge", env, name="edge")
    ledger = Ledger()
    in_room = await watch(ledger, "room", edge, token(), roomIds=ROOM)
    on_topic = await watch(ledger, "topic", edge, token(), [("t", "*")])
    dropped_token = token()
    dropped = await watch(ledger, "drops-in-outage", edge, dropped_token, roomIds=ROOM)

    async def publish_some(count: int) -> None:
        for i in range(count):
            where = {"room": ROOM} if i % 2 else {"topic": "t"}
            status, _ = await publish_http(session, publisher.url, ledger, **where)
            if status == 503 and bus == "redis":
                # A pooled connection from before the restart fails its first use: a
                # 503, nothing published, and the client retries as told.
                status, _ = await publish_http(session, publisher.url, ledger, **where)
            assert status == 202, status

    await publish_some(10)
    await dropped.wait_for(ledger.expected(dropped.record))

    await asyncio.to_thread(stop)
    await dropped.close()  # this client loses its socket while the bus is away
    refusals = 0
    for _ in range(200):
        status, headers = await publish_http(session, publisher.url, ledger, room=ROOM)
        if status == 503:
            assert "Retry-After" in headers
            refusals += 1
            if refusals == 3:
                break
        await asyncio.sleep(0.1)
    assert refusals == 3, "the publisher never answered 503 while the bus was down"
    await _until_status(session, publisher.url + "/readyz", 503)

    await asyncio.to_thread(start)
    for _ in range(300):  # the publisher recovers on its own, without a restart
        status, _ = await publish_http(session, publisher.url, ledger, room=ROOM)
        if status == 202:
            break
        await asyncio.sleep(0.5)
    assert status == 202, "the publisher did not recover after the bus came back"
    await publish_some(10)

    back = await rewatch(dropped.record, edge, dropped_token, roomIds=ROOM)
    assert dropped.record.unrecoverable is False  # the window covers the outage
    for client in (in_room, on_topic, back):
        await client.wait_for(ledger.expected(client.record))
    await publish_some(2)  # live after the seam, and the edge is not stuck
    for client in (in_room, on_topic, back):
        await client.wait_for(ledger.expected(client.record))
        await client.close()
    report = ledger.check()
    print(report.text())
    assert report.ok, report.text()
    assert report.sent >= 23


async def test_redis_restart_auth_and_edge_degrade_as_documented_and_recover(
    infra: Infra,
    topic: str,
    start_service: ServiceFactory,
    own_redis: RedisServer,
    session: aiohttp.ClientSession,
    publisher: Publisher,
) -> None:
    env = {**infra.env(topic), "ROOMCAST_REDIS__URL": own_redis.url, "ROOMCAST_REDIS__TIMEOUT": "1"}
    auth = start_service("auth", env, name="auth")
    edge = start_service("edge", env, name="edge")

    async def issue() -> dict[str, str]:
        body = {"device_id": "d", "is_login": False}
        async with session.post(auth.url + "/v1/tokens", json=body) as reply:
            assert reply.status == 201  # issuing never needs Redis
            issued: dict[str, str] = await reply.json()
            return issued

    async def heartbeat(tok: str) -> tuple[int, dict[str, str]]:
        headers = {"Authorization": f"Bearer {tok}"}
        async with session.post(auth.url + "/v1/heartbeat", headers=headers) as reply:
            return reply.status, dict(reply.headers)

    ledger = Ledger()
    steady = await watch(ledger, "steady", edge, (await issue())["token"], roomIds=ROOM)
    await publish_direct(publisher, ledger, 5, room=ROOM)

    await asyncio.to_thread(own_redis.stop)
    down_token = await issue()
    status, headers = await heartbeat(down_token["token"])
    assert status == 503
    assert "Retry-After" in headers
    async with session.get(auth.url + "/heartbeat", params={"token": down_token["token"]}) as r:
        assert r.status == 503
    await _until_status(session, auth.url + "/readyz", 503)
    await _until_status(session, edge.url + "/readyz", 503)
    # The edge fails open at connect: a valid token still gets in while Redis is away.
    during = await watch(ledger, "joined-in-outage", edge, down_token["token"], roomIds=ROOM)
    await publish_direct(publisher, ledger, 5, room=ROOM)
    for client in (steady, during):
        await client.wait_for(ledger.expected(client.record))

    await asyncio.to_thread(own_redis.start)
    await _until_status(session, auth.url + "/readyz", 200)
    await _until_status(session, edge.url + "/readyz", 200)
    assert (await heartbeat(down_token["token"]))[0] == 200
    # Revocation works again without a restart: the connection that came in during
    # the outage is closed as soon as its token is revoked.
    revoke = f"{auth.url}/v1/tokens/{down_token['token_id']}/revoke"
    async with session.post(revoke) as reply:
        assert reply.status == 200
    assert await during.wait_closed() == 1008
    during.record.departed = True
    with pytest.raises(websockets.InvalidStatus) as refused:
        await connect(edge, token=down_token["token"])
    assert refused.value.response.status_code == 401
    await publish_direct(publisher, ledger, 5, room=ROOM)
    await steady.wait_for(ledger.expected(steady.record))
    await steady.close()
    report = ledger.check()
    assert report.ok, report.text()
    assert report.clients[0].delivered == 15
