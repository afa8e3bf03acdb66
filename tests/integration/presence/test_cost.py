"""What presence costs a handshake: the edge's own CPU time per connect, with presence
on and off, measured in the same test (CPU time, not wall time: the machine's load
does not move it much)."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

from websockets.asyncio.client import ClientConnection

from roomcast_harness.services import ServiceProcess
from tests.conftest import Infra
from tests.integration.edge.conftest import connect, metric, token
from tests.integration.presence.conftest import Receiver, eventually, stack_env

CLIENTS = 600
AT_ONCE = 60
ROUNDS = 2


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _storm(edge: ServiceProcess, room: str) -> float:
    """CPU seconds the edge spent per connect of CLIENTS clients into one room."""
    clients: list[ClientConnection] = []
    raw = token(subject="storm")
    before = _cpu_seconds(edge.pid)
    for start in range(0, CLIENTS, AT_ONCE):
        batch = await asyncio.gather(
            *(connect(edge, token=raw, roomIds=room) for _ in range(start, start + AT_ONCE))
        )
        clients.extend(ws for ws, _ in batch)
    # With presence on, until everything is written.
    await eventually(lambda: metric(edge, "roomcast_edge_presence_pending") == 0)
    spent = _cpu_seconds(edge.pid) - before
    await asyncio.gather(*(ws.close() for ws in clients))
    return spent / CLIENTS


async def test_presence_costs_a_handshake_little(
    infra: Infra, topic: str, tmp_path: Path, receiver: Receiver
) -> None:
    env = stack_env(infra, topic, f"roomcast:test:outbox:{uuid.uuid4().hex[:8]}", receiver)
    edges = {
        on: ServiceProcess(
            "edge", {**env, "ROOMCAST_EDGE__PRESENCE": str(on).lower()}, tmp_path, name=f"p{on}"
        )
        for on in (True, False)
    }
    try:
        for edge in edges.values():
            edge.start()
        best: dict[bool, float] = {}
        for _ in range(ROUNDS):
            for on, edge in edges.items():
                per_connect = await _storm(edge, f"cost-{uuid.uuid4().hex[:8]}")
                best[on] = min(best.get(on, per_connect), per_connect)
        print(
            f"edge CPU per handshake: presence on {best[True] * 1e6:.0f} µs, "
            f"off {best[False] * 1e6:.0f} µs"
        )
        # Handshakes/s with presence on >= 0.8 x with it off, as CPU per handshake.
        assert best[True] <= best[False] / 0.8, best
        assert metric(edges[True], "roomcast_edge_presence_flushes_total") < CLIENTS
    finally:
        for edge in edges.values():
            edge.stop()
