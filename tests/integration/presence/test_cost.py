"""A connect storm into one room: presence writes are batched, not one round trip per
connect. What presence costs a handshake (on vs off) is measured by the bench's
`roomcast_nopresence` variant, not asserted here: a timed ratio flakes on a busy machine."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from websockets.asyncio.client import ClientConnection

from roomcast_harness.services import ServiceProcess
from tests.conftest import Infra
from tests.integration.edge.conftest import connect, metric, token
from tests.integration.presence.conftest import Receiver, eventually, stack_env

CLIENTS = 600
AT_ONCE = 60


async def _storm(edge: ServiceProcess, room: str) -> None:
    """CLIENTS clients connect into one room, AT_ONCE at a time, then leave."""
    clients: list[ClientConnection] = []
    raw = token(subject="storm")
    for start in range(0, CLIENTS, AT_ONCE):
        batch = await asyncio.gather(
            *(connect(edge, token=raw, roomIds=room) for _ in range(start, start + AT_ONCE))
        )
        clients.extend(ws for ws, _ in batch)
    # Until everything is written.
    await eventually(lambda: metric(edge, "roomcast_edge_presence_pending") == 0)
    await asyncio.gather(*(ws.close() for ws in clients))


async def test_a_connect_storm_writes_presence_in_batches(
    infra: Infra, topic: str, tmp_path: Path, receiver: Receiver
) -> None:
    env = stack_env(infra, topic, f"roomcast:test:outbox:{uuid.uuid4().hex[:8]}", receiver)
    edge = ServiceProcess("edge", {**env, "ROOMCAST_EDGE__PRESENCE": "true"}, tmp_path)
    try:
        edge.start()
        before = metric(edge, "roomcast_edge_presence_flushes_total")
        await _storm(edge, f"cost-{uuid.uuid4().hex[:8]}")
        flushes = metric(edge, "roomcast_edge_presence_flushes_total") - before
        changes = metric(edge, "roomcast_edge_presence_changes_total")
        assert changes >= CLIENTS, changes
        # Far fewer round trips than connects: the changes of a loop turn share one.
        assert flushes < CLIENTS / 2, flushes
    finally:
        edge.stop()
