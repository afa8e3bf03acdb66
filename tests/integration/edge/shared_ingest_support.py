"""What the shared-ingest tests share: edges in `shared` mode, waits and metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from roomcast_harness.services import ServiceProcess
from tests.conftest import Infra
from tests.integration.edge.conftest import WAIT, http_get, metric

PARTITIONS = 3


def shared_env(infra: Infra, topic: str, **extra: str) -> dict[str, str]:
    return infra.env(
        topic,
        ROOMCAST_EDGE__INGEST="shared",
        ROOMCAST_EDGE__GROUP=f"group-{topic}",
        ROOMCAST_KAFKA__PARTITIONS=str(PARTITIONS),
        # The test clients send no pings; a takeover alone may take half a minute.
        ROOMCAST_EDGE__HEARTBEAT_TIMEOUT="600",
        **extra,
    )


def start_edges(
    envs: list[dict[str, str]], logs: Path, names: list[str] | None = None
) -> list[ServiceProcess]:
    """Edge processes, launched together (they join one group), each ready."""
    procs = [
        ServiceProcess("edge", env, logs, name=(names or [])[i] if names else f"edge-{i + 1}")
        for i, env in enumerate(envs)
    ]
    try:
        for proc in procs:
            proc.launch()
        for proc in procs:
            proc.wait_ready(timeout=90)
    except BaseException:
        for proc in procs:
            proc.stop()
        raise
    return procs


def owned(edge: ServiceProcess) -> int:
    return int(metric(edge, "roomcast_edge_partitions_owned"))


def routed(edge: ServiceProcess, direction: str) -> float:
    _, body = http_get(edge.url + "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(f'roomcast_edge_routed_total{{direction="{direction}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def until(check: Callable[[], bool], what: str, timeout: float = WAIT) -> float:
    """Wait for a condition with a deadline (never a fixed sleep); the seconds it took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not await asyncio.to_thread(check):
        if loop.time() - started > timeout:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)
    return loop.time() - started


async def split(edges: list[ServiceProcess]) -> None:
    """Every partition owned, each edge owning some."""
    await until(
        lambda: sum(owned(e) for e in edges) == PARTITIONS and all(owned(e) for e in edges),
        "the partitions to be split",
        timeout=60,
    )


def vector(text: str) -> dict[int, int]:
    return {int(p): int(o) for p, o in (e.split(":") for e in text.split(","))}
