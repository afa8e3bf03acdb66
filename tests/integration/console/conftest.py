"""A publisher with admin keys and two edges, shared by a module; helpers for the admin API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from roomcast_core.edge_link import edge_of
from roomcast_core.edge_reports import REPORTS_KEY, EdgeReports, history_key
from roomcast_core.presence_store import room_key, users_key
from roomcast_harness.services import ServiceProcess
from tests.conftest import Infra
from tests.integration.edge.conftest import connect, token

ADMIN_KEY = "admin-key-0123456789abcdef"
PUBLISH_KEY = "publish-key-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
PUBLISHING = {"Authorization": f"Bearer {PUBLISH_KEY}"}
WAIT = 20.0  # generous: the machine is small and shared


@dataclass
class ConsoleStack:
    topic: str
    publisher: ServiceProcess
    edges: list[ServiceProcess]
    # the edge id of each edge process, learnt from a connection id
    edge_ids: list[str] = field(default_factory=list)


def start_console_stack(infra: Infra, workdir: Any, edges: int = 2, **extra: str) -> ConsoleStack:
    topic = f"roomcast.console.{uuid.uuid4().hex[:10]}"
    env = infra.env(
        topic,
        ROOMCAST_PUBLISHER__ADMIN_KEYS=f"other-admin-key-0000,{ADMIN_KEY}",
        ROOMCAST_PUBLISHER__API_KEYS=PUBLISH_KEY,
        **extra,
    )
    publisher = ServiceProcess("publisher", env, workdir, name="publisher")
    procs = [ServiceProcess("edge", env, workdir, name=f"edge-{i + 1}") for i in range(edges)]
    stack = ConsoleStack(topic, publisher, procs)
    try:
        for proc in (publisher, *procs):
            proc.launch()
        for proc in (publisher, *procs):
            proc.wait_ready(timeout=90)
    except BaseException:
        stop(stack)
        raise
    return stack


def stop(stack: ConsoleStack) -> None:
    for proc in [*stack.edges, stack.publisher]:
        proc.stop()


@pytest.fixture(scope="module")
def console_stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleStack]:
    stack = start_console_stack(infra, tmp_path_factory.mktemp("console"))
    yield stack
    stop(stack)


async def edge_id_of(edge: ServiceProcess) -> str:
    ws, hello = await connect(edge, token=token())
    await ws.close()
    found = edge_of(hello["connection_id"])
    assert found is not None, hello
    return found


async def admin_get(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with session.get(url, headers=ADMIN if headers is None else headers) as response:
        return response.status, await response.json(content_type=None)


async def until(
    probe: Callable[[], Awaitable[Any]], accept: Callable[[Any], bool], what: str
) -> Any:
    """Probe until accept(value) or WAIT seconds; fails showing the last value seen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:
        value = await probe()
        if accept(value):
            return value
        if loop.time() > deadline:
            pytest.fail(f"{what}: last seen {value!r}")
        await asyncio.sleep(0.2)


@dataclass
class TailEvent:
    event: str
    data: dict[str, Any]
    at: float


async def _parse(response: aiohttp.ClientResponse, into: asyncio.Queue[TailEvent]) -> None:
    loop = asyncio.get_running_loop()
    name, data = "message", ""
    async for raw in response.content:
        line = raw.decode().rstrip("\n").rstrip("\r")
        if not line:
            if data:
                await into.put(TailEvent(name, json.loads(data), loop.time()))
            name, data = "message", ""
        elif line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            data += line[len("data: ") :]


class TailReader:
    """The server-sent events of a tail, each stamped with the loop time it arrived.

    Read by a task of its own, so waiting for the next event with a timeout never
    cuts the stream.
    """

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._events: asyncio.Queue[TailEvent] = asyncio.Queue()
        self._task = asyncio.create_task(_parse(response, self._events))

    async def next(self, timeout: float = WAIT) -> TailEvent:
        return await asyncio.wait_for(self._events.get(), timeout)

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@contextlib.asynccontextmanager
async def open_tail(
    session: aiohttp.ClientSession, url: str
) -> AsyncIterator[tuple[aiohttp.ClientResponse, TailReader]]:
    async with session.get(url, headers=ADMIN) as response:
        reader = TailReader(response)
        try:
            yield response, reader
        finally:
            await reader.close()


EDGES = 50
ROOMS = 10_000


@dataclass
class Crowd:
    tag: str
    edges: list[str]
    rooms: list[str]


@contextlib.asynccontextmanager
async def seeded_crowd(redis_url: str) -> AsyncIterator[Crowd]:
    """50 edges reporting (every 2 s while it lasts) and 10 000 rooms with a member each,
    all removed afterwards."""
    tag = uuid.uuid4().hex[:6]
    client = aioredis.from_url(redis_url)
    crowd = Crowd(
        tag, [f"crowd{tag}{i:02d}" for i in range(EDGES)], [f"{tag}-{i}" for i in range(ROOMS)]
    )
    reports = EdgeReports(client)
    figures = {
        "connections": 10,
        "rooms": 200,
        "subscriptions": 5,
        "messages_in_per_s": 1.0,
        "p99_ms": 3.0,
    }

    async def report() -> None:
        for edge in crowd.edges:
            await reports.write(edge, figures)

    async def keep_reporting() -> None:
        while True:
            await asyncio.sleep(2.0)
            await report()

    await report()
    reporting = asyncio.create_task(keep_reporting())
    try:
        pipe = client.pipeline(transaction=False)
        for room in crowd.rooms:
            pipe.hset(room_key(room), f"{crowd.edges[0]}-c{room}", b"{}")
            pipe.hset(users_key(room), "u", 1)
        await pipe.execute()
        yield crowd
    finally:
        reporting.cancel()
        await asyncio.gather(reporting, return_exceptions=True)
        pipe = client.pipeline(transaction=False)
        for room in crowd.rooms:
            pipe.delete(room_key(room), users_key(room))
        for edge in crowd.edges:
            pipe.zrem(REPORTS_KEY, edge)
            pipe.delete(history_key(edge))
        await pipe.execute()
        await client.aclose()
