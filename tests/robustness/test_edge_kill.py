"""An edge killed with SIGKILL mid-stream: its clients move to another edge and recover.

The clients are the Python client (roomcast_client.RoomcastClient) with both edges'
URLs; publishes go through the publisher the whole time. The ledger then holds every
client to every message it was entitled to, exactly once.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from roomcast_client import RoomcastClient
from roomcast_harness.services import ServiceProcess
from tests.conftest import BUSES, Infra, infra_on
from tests.integration.edge.conftest import WAIT, token
from tests.robustness.ledger import Ledger
from tests.robustness.support import RecordedClient, publish_http

ROOMS = ("k1", "k2")


@pytest.fixture(scope="module", params=BUSES)
def infra(request: pytest.FixtureRequest) -> Infra:
    """Every test here runs on Kafka and on Redis Streams."""
    return infra_on(request)


@pytest.fixture
def stack(infra: Infra, tmp_path: Path) -> Iterator[dict[str, ServiceProcess]]:
    env = infra.env(f"roomcast.test.kill.{uuid.uuid4().hex[:10]}")
    procs = {
        name: ServiceProcess(service, env, tmp_path, name=name)
        for name, service in (("publisher", "publisher"), ("edge-1", "edge"), ("edge-2", "edge"))
    }
    try:
        for proc in procs.values():
            proc.launch()
        for proc in procs.values():
            proc.wait_ready(timeout=90)
        yield procs
    finally:
        for proc in procs.values():
            proc.stop()


def _ws(edge: ServiceProcess) -> str:
    return edge.url.replace("http://", "ws://") + "/ws"


async def test_sigkill_an_edge_clients_recover_on_the_other_exactly_once(
    stack: dict[str, ServiceProcess],
) -> None:
    killed, survivor = stack["edge-1"], stack["edge-2"]
    ledger = Ledger()
    timeout = aiohttp.ClientTimeout(total=WAIT * 3)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        # (rooms, subscriptions) of each client: every delivery rule is exercised.
        shapes: list[tuple[tuple[str, ...], tuple[tuple[str, str], ...]]] = [
            ((ROOMS[0],), ()),
            (ROOMS, ()),
            ((), (("quotes", "*"),)),
            ((), (("quotes", "tick"),)),
            ((ROOMS[1],), (("quotes", "*"),)),
            ((), ()),
        ]
        moving = [
            RecordedClient(
                RoomcastClient(
                    [_ws(killed), _ws(survivor)],
                    token(),
                    session=session,
                    backoff_min=0.1,
                    backoff_max=1.0,
                    rooms=rooms,
                    subscriptions=subscriptions,
                ),
                f"moving-{i}",
                ledger,
            )
            for i, (rooms, subscriptions) in enumerate(shapes)
        ]
        staying = [
            RecordedClient(
                RoomcastClient(
                    _ws(survivor), token(), session=session, rooms=rooms, subscriptions=subs
                ),
                f"staying-{i}",
                ledger,
            )
            for i, (rooms, subs) in enumerate(shapes[:2])
        ]
        clients = moving + staying
        for client in clients:
            await client.start()

        stop = asyncio.Event()
        kinds: list[dict[str, str]] = [
            {"room": ROOMS[0]},
            {"room": ROOMS[1]},
            {"topic": "quotes", "type_": "tick"},
            {"topic": "quotes"},
            {"room": ROOMS[1], "topic": "quotes", "type_": "tick"},
            {},
        ]

        async def publish_loop() -> int:
            sent = 0
            while not stop.is_set():
                status, _ = await publish_http(
                    session, stack["publisher"].url, ledger, **kinds[sent % len(kinds)]
                )
                assert status == 202, status
                sent += 1
            return sent

        loop = asyncio.create_task(publish_loop())
        while len(ledger.sent) < 30:
            await asyncio.sleep(0.05)
        killed.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(killed.process.wait, 10)
        while len(ledger.sent) < 90:
            await asyncio.sleep(0.05)
        stop.set()
        assert await loop >= 90

        for client in clients:
            assert client.record is not None
            await client.wait_for(ledger.expected(client.record))
        for client in clients:
            await client.close()

    report = ledger.check()
    assert report.ok, report.text()
    for client in moving:
        assert client.client.connects == 2, client.name
        assert client.client.last_connected.get("recovered") is True, client.name
        assert client.record is not None
        assert not client.record.unrecoverable
    assert all(c.expected > 0 for c in report.clients)
