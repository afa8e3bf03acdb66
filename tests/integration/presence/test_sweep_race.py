"""A paused edge whose heartbeat lands between two runs of another edge's sweep keeps
all its members: it was claimed whole, so it finds itself swept and writes them back.

The edge is a real process paused with SIGSTOP. The other edge's sweep is the same
script every edge runs (`PresenceStore.sweep`), run by the test one chunk at a time
so that the heartbeat lands between two runs every time, not by luck of timing.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from roomcast_core.presence_store import EDGES_KEY, Outlets, PresenceStore, edge_key
from roomcast_harness.services import ServiceProcess
from tests.conftest import NO_KAFKA, Infra
from tests.integration.edge.conftest import WAIT, connect, token

MEMBERS = 20
CHUNK = 5  # members one sweep run removes: the sweep of this edge takes several runs
TTL = 2.0  # seconds: heartbeats every 0.5 s, a deadline 1.5 s ahead


@pytest.fixture(scope="module")
def infra(aof_redis_url: str) -> Infra:
    return Infra(aof_redis_url, NO_KAFKA, bus="redis")


@pytest_asyncio.fixture
async def store(infra: Infra) -> AsyncIterator[PresenceStore]:
    client = aioredis.Redis.from_url(infra.redis_url)
    presence = PresenceStore(client)
    await presence.load()
    yield presence
    await client.aclose()


async def _edge_id(store: PresenceStore, room: str, user: str = "u0") -> str:
    """The presence id of the edge holding `user`'s membership of `room`."""
    for raw in await store.client.zrange(EDGES_KEY, 0, -1):
        edge = raw.decode() if isinstance(raw, bytes) else str(raw)
        entries = await store.client.smembers(edge_key(edge))
        if any(json.loads(e)[0::2] == [room, user] for e in entries):
            return edge
    raise AssertionError(f"no edge holds room {room}")


async def _deadline_passed(store: PresenceStore, edge: str) -> bool:
    score = await store.client.zscore(EDGES_KEY, edge)
    seconds, micros = await store.client.time()
    return score is None or score < seconds * 1000 + micros // 1000


async def _sweep_all(store: PresenceStore) -> None:
    while await store.sweep(Outlets(), CHUNK):
        pass


async def test_a_heartbeat_between_two_sweep_runs_loses_no_member(
    infra: Infra, topic: str, tmp_path: Path, store: PresenceStore
) -> None:
    room = f"swept-{uuid.uuid4().hex[:8]}"
    env = infra.env(topic, ROOMCAST_EDGE__PRESENCE_TTL=str(TTL))
    edge = ServiceProcess("edge", env, tmp_path, name="paused")
    edge.start()
    clients = []
    try:
        for n in range(MEMBERS):
            ws, _ = await connect(edge, token=token(subject=f"u{n}"), roomIds=room)
            clients.append(ws)

        async def counted() -> int:
            return int((await store.read(room, MEMBERS))["connections"])

        async def all_there() -> bool:
            return await counted() == MEMBERS

        await _wait(all_there)
        edge_id = await _edge_id(store, room)
        await _sweep_all(store)  # whatever other tests left dead, out of the way first

        os.kill(edge.pid, signal.SIGSTOP)
        try:

            async def lapsed() -> bool:
                return await _deadline_passed(store, edge_id)

            await _wait(lapsed)
            # The other edge's sweep begins: two runs, not the whole of it.
            assert await store.sweep(Outlets(), CHUNK)
            assert await store.sweep(Outlets(), CHUNK)
            assert await counted() < MEMBERS
        finally:
            os.kill(edge.pid, signal.SIGCONT)

        # The paused edge's heartbeat lands, then the sweep goes on to its end.
        async def beat_again() -> bool:
            return not await _deadline_passed(store, edge_id)

        await _wait(beat_again)
        await _sweep_all(store)
        # Every connection is still open, so every member is there again, and stays.
        await _wait(all_there)
        await _sweep_all(store)
        assert await counted() == MEMBERS
        assert await store.client.scard(edge_key(edge_id)) == MEMBERS
    finally:
        for ws in clients:
            await ws.close()
        edge.stop()


async def _wait(check: Callable[[], Awaitable[bool]], timeout: float = WAIT) -> None:
    """Poll an async predicate until it holds, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"{check.__name__} did not hold within {timeout} s")
        await asyncio.sleep(0.05)


async def test_an_edge_swept_by_another_real_edge_writes_its_members_back(
    infra: Infra, topic: str, tmp_path: Path, store: PresenceStore
) -> None:
    """Two edges: the live one sweeps the paused one; once the paused one resumes, all
    its members (its connections never closed) are back and stay."""
    room = f"swept-{uuid.uuid4().hex[:8]}"
    env = infra.env(topic, ROOMCAST_EDGE__PRESENCE_TTL=str(TTL))
    paused = ServiceProcess("edge", env, tmp_path, name="paused")
    sweeper = ServiceProcess("edge", env, tmp_path, name="sweeper")
    clients = []
    try:
        paused.start()
        sweeper.start()
        for n in range(MEMBERS):
            ws, _ = await connect(paused, token=token(subject=f"u{n}"), roomIds=room)
            clients.append(ws)
        bystander, _ = await connect(sweeper, token=token(subject="b"), roomIds=room)
        clients.append(bystander)

        async def counted() -> int:
            return int((await store.read(room, MEMBERS + 1))["connections"])

        async def everyone() -> bool:
            return await counted() == MEMBERS + 1

        async def only_the_bystander() -> bool:
            return await counted() == 1

        await _wait(everyone)
        edge_id = await _edge_id(store, room)
        os.kill(paused.pid, signal.SIGSTOP)
        try:
            await _wait(only_the_bystander)  # the other edge removed them all
        finally:
            os.kill(paused.pid, signal.SIGCONT)
        await _wait(everyone)

        async def grave_gone() -> bool:
            return not await store.client.sismember("roomcast:presence:graves", edge_id)

        await _wait(grave_gone)
        assert await counted() == MEMBERS + 1
        assert await store.client.scard(edge_key(edge_id)) == MEMBERS
    finally:
        for ws in clients:
            await ws.close()
        paused.stop()
        sweeper.stop()
