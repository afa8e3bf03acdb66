"""Slow and stalled clients at scale: one in ten never reads, the rest receive everything.

A stalled client (tiny receive buffer, never reads) fills its outbound buffer on the
edge and is cut off with 4008; it must never hold back the others, who each get every
message exactly once (the ledger), in publish order. Stalled clients are also in a
"heavy" room fed with large messages, so the kernel's socket buffers (several MB on
loopback) overflow quickly and the cut-off happens while the readers are being served.
"""

from __future__ import annotations

import asyncio
import socket

import websockets
from websockets.asyncio.client import ClientConnection

from roomcast_harness.services import ServiceProcess
from tests.conftest import Infra, ServiceFactory
from tests.integration.edge.conftest import WAIT, Publisher, connect, token
from tests.robustness.ledger import Ledger
from tests.robustness.support import eventually, gather_bounded, metrics, publish_direct, watch

CLIENTS = 60
STALLED_EVERY = 10
MESSAGES = 240
HEAVY_PER_ROUND = 25
PAD = "x" * 500
HEAVY_PAD = "h" * 32768
ROOM = "busy"
HEAVY_ROOM = "heavy"
SLOW = 'roomcast_edge_drops_total{reason="slow_consumer"}'


async def _stalled(edge: ServiceProcess) -> ClientConnection:
    # A small receive buffer and a one-message client queue: it stops reading at once.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", edge.port))
    ws, _ = await connect(
        edge, {"sock": sock, "max_queue": 1}, token=token(), roomIds=f"{ROOM},{HEAVY_ROOM}"
    )
    return ws


async def _close_code_when_read(ws: ClientConnection) -> int | None:
    """Read what the stalled client was sent until the close frame; its code."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), WAIT)
    except websockets.ConnectionClosed:
        return ws.close_code


async def test_one_in_ten_never_reads_and_the_rest_get_everything(
    infra: Infra, topic: str, start_service: ServiceFactory, publisher: Publisher
) -> None:
    edge = start_service("edge", infra.env(topic, ROOMCAST_EDGE__MAX_OUTBOUND_BYTES="262144"))
    ledger = Ledger()
    stalled_count = CLIENTS // STALLED_EVERY
    readers = await gather_bounded(
        (
            watch(ledger, f"reader-{i}", edge, token(), roomIds=ROOM)
            for i in range(CLIENTS - stalled_count)
        ),
        limit=20,
    )
    stalled = [await _stalled(edge) for _ in range(stalled_count)]

    for start in range(0, MESSAGES, 30):
        await publish_direct(publisher, ledger, 30, room=ROOM, pad=PAD, first=start)
        await publish_direct(publisher, ledger, HEAVY_PER_ROUND, room=HEAVY_ROOM, pad=HEAVY_PAD)
    for reader in readers:
        await reader.wait_for(ledger.expected(reader.record), timeout=WAIT * 6)

    drops = await eventually(
        lambda: metrics(edge)[SLOW], lambda n: n >= stalled_count, WAIT * 3, "slow consumer cuts"
    )
    assert drops == stalled_count  # only the stalled ones, never a reader
    for ws in stalled:
        assert await _close_code_when_read(ws) == 4008
    for reader in readers:
        assert reader.close_code is None  # still open
        received = [m for m, _ in reader.record.received]
        assert received == ledger.expected(reader.record)  # all of them, in order
        await reader.close()
    report = ledger.check()
    assert report.ok, report.text()
    assert {c.delivered for c in report.clients} == {MESSAGES}
