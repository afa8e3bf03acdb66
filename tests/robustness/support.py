"""What the robustness tests share: probes into an edge process, and ledger-recorded clients.

The probes read what an operator could read: RSS and open sockets from /proc, and the
gauges of /metrics. Clients record every push they receive into a ledger record.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp
import websockets
from websockets.asyncio.client import ClientConnection

from roomcast_client import RoomcastClient
from roomcast_harness.services import ServiceProcess
from tests.integration.edge.conftest import WAIT, Publisher, connect, http_get, message
from tests.robustness.ledger import ClientRecord, Ledger, Sent

# ---- probes -----------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/status (VmRSS is in kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def open_sockets(pid: int) -> int:
    """Sockets the process holds open (its listening socket included)."""
    count = 0
    fd_dir = Path(f"/proc/{pid}/fd")
    for entry in fd_dir.iterdir():
        with contextlib.suppress(OSError):  # an fd may close while we look
            if os.readlink(entry).startswith("socket:"):
                count += 1
    return count


def metrics(service: ServiceProcess) -> dict[str, float]:
    """Every sample of /metrics by its full name with labels, e.g. 'x_total{reason="a"}'."""
    status, body = http_get(service.url + "/metrics")
    assert status == 200, body
    samples: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


async def eventually(
    probe: Callable[[], Any], accept: Callable[[Any], bool], timeout: float, what: str
) -> Any:
    """Poll a blocking probe (in a thread) until accept(value); return the last value.

    Times out with the last value in the message, so a failure shows what was seen.
    """
    value: Any = None
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await asyncio.to_thread(probe)
        if accept(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: still {value!r} after {timeout:.0f}s")
        await asyncio.sleep(0.2)


# ---- clients recorded in a ledger ----------------------------------------------


class Watcher:
    """A raw WebSocket client that reads in the background and records every push."""

    def __init__(self, ws: ClientConnection, record: ClientRecord) -> None:
        self.ws = ws
        self.record = record
        self.replies: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                body = json.loads(raw)
                if "meta" in body:
                    self.record.push(body)
                else:
                    self.replies.append(body)
                self._changed.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self._changed.set()

    def has(self, message_ids: Iterable[str]) -> bool:
        got = {m for m, _ in self.record.received}
        return all(m in got for m in message_ids)

    async def wait_for(self, message_ids: Iterable[str], timeout: float = WAIT * 3) -> None:
        wanted = list(message_ids)

        async def until() -> None:
            while not self.has(wanted):
                if self._task.done():
                    raise AssertionError(f"{self.record.name} closed ({self.close_code})")
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(until(), timeout)

    async def wait_closed(self, timeout: float = WAIT * 3) -> int | None:
        """Wait for the edge to close this connection; its close code."""
        await asyncio.wait_for(asyncio.shield(self._task), timeout)
        return self.close_code

    async def close(self) -> None:
        await self.ws.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, WAIT)


async def rewatch(record: ClientRecord, edge: ServiceProcess, token: str, **query: str) -> Watcher:
    """Reconnect a recorded client with since=<its vector>, as a client that lost its socket.

    The `connected` reply goes into the record (recovered: false excuses losses).
    """
    ws, hello = await connect(edge, None, token=token, since=record.vector(), **query)
    record.connected(hello)
    return Watcher(ws, record)


async def watch(
    ledger: Ledger,
    name: str,
    edge: ServiceProcess,
    token: str,
    subscriptions: Iterable[tuple[str, str]] = (),
    **query: str,
) -> Watcher:
    """Connect a raw client (no automatic pings) and record it in the ledger."""
    subs = list(subscriptions)
    if subs:
        query["topics"] = ",".join(f"{t}:{k}" for t, k in subs)
    ws, hello = await connect(edge, None, token=token, **query)
    return Watcher(ws, ledger.client(name, hello, subs))


class RecordedClient:
    """A RoomcastClient (reconnects, recovers with since) whose pushes go to the ledger."""

    def __init__(self, client: RoomcastClient, name: str, ledger: Ledger) -> None:
        self.client = client
        self.name = name
        self.ledger = ledger
        self.record: ClientRecord | None = None
        self._seen_connects = 0
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> RecordedClient:
        hello = await self.client.connect()
        self.record = self.ledger.client(self.name, hello, self.client.subscriptions)
        self._seen_connects = self.client.connects
        self._task = asyncio.create_task(self._read())
        return self

    def _note_reconnects(self) -> None:
        assert self.record is not None
        if self.client.connects != self._seen_connects:
            self._seen_connects = self.client.connects
            self.record.connected(self.client.last_connected)

    async def _read(self) -> None:
        assert self.record is not None
        async for push in self.client.messages():
            self._note_reconnects()
            self.record.received.append((push.message_id, push.position))
            self._changed.set()

    def has(self, message_ids: Iterable[str]) -> bool:
        assert self.record is not None
        got = {m for m, _ in self.record.received}
        return all(m in got for m in message_ids)

    async def wait_for(self, message_ids: Iterable[str], timeout: float = WAIT * 3) -> None:
        wanted = list(message_ids)

        async def until() -> None:
            while not self.has(wanted):
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(until(), timeout)

    async def close(self) -> None:
        self._note_reconnects()
        await self.client.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def publish_direct(
    publisher: Publisher,
    ledger: Ledger,
    count: int,
    room: str | None = None,
    *,
    pad: str = "",
    first: int = 0,
    **fields: Any,
) -> list[str]:
    """Write `count` records straight to Kafka (as the publisher would) and record them.

    Payloads are {"seq": first + i} (plus "pad" when given, to make them heavy).
    """
    payloads = [{"seq": first + i, **({"pad": pad} if pad else {})} for i in range(count)]
    msgs = [message(p, room=room, **fields) for p in payloads]
    positions = await publisher.send_many(msgs)
    for msg, position in zip(msgs, positions, strict=True):
        ledger.acknowledged(Sent(msg.message_id, position, msg.topic, msg.type, msg.room))
    return [m.message_id for m in msgs]


async def publish_http(
    session: aiohttp.ClientSession,
    publisher_url: str,
    ledger: Ledger,
    *,
    room: str | None = None,
    topic: str | None = None,
    type_: str | None = None,
) -> tuple[int, dict[str, str]]:
    """POST /v1/messages and record the outcome: 202 acknowledged, 503 not published,
    anything else (504, a timeout, a cut connection) of unknown outcome."""
    message_id = uuid.uuid4().hex
    body: dict[str, Any] = {"payload": {"id": message_id}, "message_id": message_id}
    for name, value in (("room", room), ("topic", topic), ("type", type_)):
        if value is not None:
            body[name] = value
    try:
        async with session.post(publisher_url + "/v1/messages", json=body) as reply:
            status, headers = reply.status, dict(reply.headers)
            data = await reply.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError):
        ledger.maybe(message_id)
        return 0, {}
    if status == 202:
        ledger.acknowledged(Sent(message_id, str(data["position"]), topic, type_, room))
    elif status != 503:  # a 503 is a promise that nothing was published
        ledger.maybe(message_id)
    return status, headers


async def gather_bounded(coros: Iterable[Awaitable[Any]], limit: int) -> list[Any]:
    """Run coroutines with at most `limit` at a time (handshake storms stay bounded)."""
    gate = asyncio.Semaphore(limit)

    async def one(coro: Awaitable[Any]) -> Any:
        async with gate:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros))
