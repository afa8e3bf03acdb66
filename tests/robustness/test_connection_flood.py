"""Handshake floods beyond the edge's connection limit: 503 before the upgrade, at once,
while the clients already connected keep receiving everything."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.conftest import Infra, ServiceFactory
from tests.integration.edge.conftest import WAIT, Publisher, token
from tests.robustness.ledger import Ledger
from tests.robustness.support import eventually, gather_bounded, metrics, publish_direct, watch

LIMIT = 50
WATCHERS = 10
FLOOD = 200
ROOM = "steady"


async def test_handshakes_over_the_limit_get_503_and_the_connected_keep_receiving(
    infra: Infra, topic: str, start_service: ServiceFactory, publisher: Publisher
) -> None:
    edge = start_service("edge", infra.env(topic, ROOMCAST_EDGE__MAX_CONNECTIONS=str(LIMIT)))
    ledger = Ledger()
    watchers = [
        await watch(ledger, f"steady-{i}", edge, token(), roomIds=ROOM) for i in range(WATCHERS)
    ]
    url = edge.url + "/ws"
    timeout = aiohttp.ClientTimeout(total=WAIT * 3)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        fillers = [
            await session.ws_connect(url, params={"token": token()})
            for _ in range(LIMIT - WATCHERS)
        ]

        async def handshake() -> tuple[int, str | None, str]:
            try:
                ws = await session.ws_connect(url, params={"token": token()})
            except aiohttp.WSServerHandshakeError as exc:
                retry = exc.headers.get("Retry-After") if exc.headers else None
                return exc.status, retry, exc.message
            await ws.close()
            return 101, None, "upgraded"

        async def flood() -> list[tuple[int, str | None, str]]:
            return await gather_bounded((handshake() for _ in range(FLOOD)), limit=50)

        # The flood and the live stream at the same time.
        flooding = asyncio.create_task(flood())
        for round_ in range(10):
            await publish_direct(publisher, ledger, 10, room=ROOM, first=round_ * 10)
            await asyncio.sleep(0.05)
        answers = await flooding
        for watcher in watchers:
            await watcher.wait_for(ledger.expected(watcher.record))

        assert {status for status, _, _ in answers} == {503}, answers[:5]
        assert {retry for _, retry, _ in answers} == {"1"}
        sample = metrics(edge)
        assert (
            sample['roomcast_edge_connects_rejected_total{reason="too_many_connections"}'] == FLOOD
        )
        assert sample["roomcast_edge_connections"] == LIMIT

        # Room again once some leave: the limit is a limit, not a lock-out.
        for ws in fillers:
            await ws.close()
        await eventually(
            lambda: metrics(edge)["roomcast_edge_connections"],
            lambda n: n == WATCHERS,
            WAIT,
            "connections after the fillers left",
        )
        late = await watch(ledger, "late", edge, token(), roomIds=ROOM)
        await publish_direct(publisher, ledger, 5, room=ROOM, first=100)
        for watcher in [*watchers, late]:
            await watcher.wait_for(ledger.expected(watcher.record))
            await watcher.close()
    report = ledger.check()
    assert report.ok, report.text()
    assert [c.delivered for c in report.clients] == [105] * WATCHERS + [5]
