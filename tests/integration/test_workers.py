"""Several workers of one service on one port (`WORKERS`), as real processes.

Each worker is a child of the service's process. Any worker answers /metrics and
/readyz for all of them; a killed worker is started again within 5 s; SIGTERM
drains every worker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import websockets

from roomcast_harness.services import ServiceProcess
from tests.conftest import Infra
from tests.integration.edge.conftest import WAIT, bus_publisher, http_get, token
from tests.robustness.ledger import Ledger
from tests.robustness.support import Watcher, eventually, metrics, publish_direct, rewatch, watch


def _children(pid: int) -> list[int]:
    """Worker pids: the supervisor's children (its process group may hold more)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after its ')'.
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


@pytest.fixture
def edge_workers(infra: Infra, tmp_path: Path) -> Iterator[ServiceProcess]:
    topic = f"roomcast.test.{uuid.uuid4().hex[:12]}"
    env = infra.env(topic, ROOMCAST_EDGE__WORKERS="2", ROOMCAST_EDGE__DRAIN_SECONDS="1")
    proc = ServiceProcess("edge", env, tmp_path, name="edge")
    proc.start(timeout=90)
    try:
        yield proc
    finally:
        proc.stop()


def test_a_worker_count_is_a_number_or_auto() -> None:
    from roomcast_core.workers import worker_count

    assert worker_count("3") == 3
    assert worker_count("auto") == len(os.sched_getaffinity(0))
    for bad in ("0", "-1", "many"):
        with pytest.raises(ValueError):  # noqa: PT011 - int() and our check both say ValueError
            worker_count(bad)


def test_a_bad_worker_count_stops_the_service_naming_the_setting(
    infra: Infra, tmp_path: Path
) -> None:
    env = infra.env("roomcast.test.workers", ROOMCAST_PUBLISHER__WORKERS="zero")
    proc = ServiceProcess("publisher", env, tmp_path, name="publisher")
    proc.launch()
    code = proc.process.wait(60)
    assert code == 2
    assert "workers" in proc.logs().lower()


async def test_edge_workers_share_the_port_and_answer_metrics_for_all(
    infra: Infra, edge_workers: ServiceProcess
) -> None:
    workers = _children(edge_workers.pid)
    assert len(workers) == 2, workers
    clients = []
    try:
        for _ in range(12):
            ws = await websockets.connect(
                edge_workers.url.replace("http", "ws") + f"/ws?token={token()}",
                open_timeout=WAIT,
                ping_interval=None,
            )
            await ws.recv()
            clients.append(ws)
        # The kernel spreads connections over both workers; any one of them counts all.
        seen = [metrics(edge_workers)["roomcast_edge_connections"] for _ in range(6)]
        assert set(seen) == {12.0}, seen
        per_worker = []
        for sock in sorted(Path(p) for p in _worker_sockets(edge_workers)):
            connector = aiohttp.UnixConnector(path=str(sock))
            async with (
                aiohttp.ClientSession(connector=connector) as session,
                session.get("http://w/metrics?scope=worker") as reply,
            ):
                text = await reply.text()
            line = next(x for x in text.splitlines() if x.startswith("roomcast_edge_connections "))
            per_worker.append(float(line.split()[1]))
        assert sum(per_worker) == 12.0
        assert all(n > 0 for n in per_worker), per_worker
    finally:
        for ws in clients:
            await ws.close()


def _worker_sockets(proc: ServiceProcess) -> list[str]:
    """The workers' Unix sockets, from their environment."""
    folders = set()
    for pid in _children(proc.pid):
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        for item in environ:
            if item.startswith(b"ROOMCAST_WORKER_DIR="):
                folders.add(item.split(b"=", 1)[1].decode())
    (folder,) = folders
    return [str(p) for p in Path(folder).glob("worker-*.sock")]


async def test_a_killed_edge_worker_is_back_within_5s_and_its_clients_recover(
    infra: Infra, edge_workers: ServiceProcess
) -> None:
    topic = edge_workers.env["ROOMCAST_KAFKA__TOPIC"]
    ledger = Ledger()
    tok = token()
    watchers: list[Watcher] = [
        await watch(ledger, f"c{i}", edge_workers, tok, roomIds="w1") for i in range(10)
    ]
    async with bus_publisher(infra, topic) as publisher:
        await publish_direct(publisher, ledger, 50, room="w1")
        victim = _children(edge_workers.pid)[0]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        await publish_direct(publisher, ledger, 50, room="w1", first=50)

        def workers() -> list[int]:
            return _children(edge_workers.pid)

        back = await eventually(
            workers, lambda w: len(w) == 2 and victim not in w, 5.0, "a new worker"
        )
        assert time.monotonic() - killed_at < 5.5, back
        await eventually(
            lambda: http_get(edge_workers.url + "/readyz")[0], lambda s: s == 200, WAIT, "ready"
        )
        # Clients of the dead worker lost their socket; they come back with `since`.
        for i, watcher in enumerate(list(watchers)):
            if watcher.close_code is not None or watcher._task.done():
                watchers[i] = await rewatch(watcher.record, edge_workers, tok, roomIds="w1")
        await publish_direct(publisher, ledger, 20, room="w1", first=100)
        for watcher in watchers:
            await watcher.wait_for(ledger.expected(watcher.record))
    for watcher in watchers:
        await watcher.close()
    report = ledger.check()
    assert report.ok, report.text()


async def test_sigterm_drains_every_worker_with_1012(
    infra: Infra, edge_workers: ServiceProcess
) -> None:
    clients = []
    for _ in range(8):
        ws = await websockets.connect(
            edge_workers.url.replace("http", "ws") + f"/ws?token={token()}",
            open_timeout=WAIT,
            ping_interval=None,
        )
        await ws.recv()
        clients.append(ws)
    workers = _children(edge_workers.pid)
    os.kill(edge_workers.pid, signal.SIGTERM)
    codes = []
    for ws in clients:
        try:
            async with asyncio.timeout(WAIT):
                async for _ in ws:
                    pass
        except websockets.ConnectionClosed:
            pass
        codes.append(ws.close_code)
    assert codes == [1012] * len(clients)
    assert edge_workers.process.wait(WAIT) == 0
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]


async def test_publisher_workers_count_every_request_whichever_answers(
    infra: Infra, tmp_path: Path
) -> None:
    env = infra.env(f"roomcast.test.{uuid.uuid4().hex[:12]}", ROOMCAST_PUBLISHER__WORKERS="2")
    proc = ServiceProcess("publisher", env, tmp_path, name="publisher")
    proc.start(timeout=90)
    try:
        assert len(_children(proc.pid)) == 2
        connector = aiohttp.TCPConnector(force_close=True)  # each request may meet either
        async with aiohttp.ClientSession(connector=connector) as session:
            for i in range(20):
                body = {"topic": "t", "payload": {"n": i}}
                async with session.post(proc.url + "/v1/messages", json=body) as reply:
                    assert reply.status == 202, await reply.text()
        samples = metrics(proc)
        produced = sum(
            v
            for k, v in samples.items()
            if k.startswith("roomcast_publisher_records_produced_total")
        )
        assert produced == 20, samples
        victim = _children(proc.pid)[1]
        os.kill(victim, signal.SIGKILL)
        await eventually(
            lambda: _children(proc.pid), lambda w: len(w) == 2 and victim not in w, 5.0, "worker"
        )
        await eventually(
            lambda: http_get(proc.url + "/readyz")[0], lambda s: s == 200, WAIT, "ready"
        )
        workers = _children(proc.pid)
    finally:
        code = proc.stop()
    assert code == 0
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]
