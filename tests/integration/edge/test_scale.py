"""2 000 concurrent connections receive a burst with nothing lost."""

from __future__ import annotations

import asyncio
import resource

import websockets

from tests.conftest import Infra, ServiceFactory
from tests.integration.edge.conftest import Publisher, connect, message, token

CLIENTS = 2000
BURST = 50


def _raise_open_files(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


async def test_two_thousand_clients_get_every_message_of_a_burst(
    infra: Infra, topic: str, start_service: ServiceFactory, publisher: Publisher
) -> None:
    _raise_open_files(CLIENTS * 2 + 500)
    edge = start_service("edge", infra.env(topic))
    raw = token()
    clients: list[websockets.ClientConnection] = []
    for start in range(0, CLIENTS, 100):
        batch = await asyncio.gather(
            *(
                connect(edge, token=raw, roomIds="hall")
                for _ in range(start, min(start + 100, CLIENTS))
            )
        )
        clients.extend(ws for ws, _ in batch)
    msgs = [message({"seq": i}, room="hall") for i in range(BURST)]
    await publisher.send_many(msgs)
    expected = [m.message_id for m in msgs]

    async def receive_all(ws: websockets.ClientConnection) -> list[str]:
        got: list[str] = []
        while len(got) < BURST:
            raw_frame = await ws.recv()
            assert isinstance(raw_frame, str)
            got.append(raw_frame.split('"message_id":"', 1)[1].split('"', 1)[0])
        return got

    results = await asyncio.wait_for(asyncio.gather(*(receive_all(ws) for ws in clients)), 180)
    assert len(results) == CLIENTS
    assert all(got == expected for got in results)
    await asyncio.gather(*(ws.close() for ws in clients))
