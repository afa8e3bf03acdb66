"""One hostile client must not cost the others their service.

Each test runs one flood against a shared edge while a well-behaved client on the
same edge measures its `ping` round trip and receives the pushes published
meanwhile. It must lose nothing, and its median and p90 round trip during the flood
must stay within a small multiple of its own round trip measured just before (a
ratio to a baseline taken on the same machine a moment earlier, plus a small
absolute floor for scheduler noise: the machine is small and shared).

The floods run in threads on blocking sockets with their bytes built beforehand:
they spend their time in system calls, outside the interpreter lock, so the
measuring client's event loop is not slowed by the test's own flooding.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import statistics
import struct
import threading
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
import websockets
from websockets.asyncio.client import ClientConnection

from tests.conftest import Infra
from tests.integration.edge.conftest import (
    WAIT,
    Publisher,
    SharedEdge,
    bus_publisher,
    connect,
    message,
    module_edge,
    token,
)
from tests.robustness.ledger import ClientRecord, Ledger
from tests.robustness.support import eventually, metrics, publish_direct

ROOM = "steady"
LIMIT = 40  # MAX_CONNECTIONS of this module's edge
MAX_FRAGMENTS = 1024
# How much slower the good client may get during a flood, and the noise floor.
RATIO = 5.0
FLOOR = 0.020
SAMPLES = 40
GAP = 0.02  # between pings: 50 a second is the request rate limit


@pytest.fixture(scope="module")
def edge(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedEdge]:
    with module_edge(
        infra,
        tmp_path_factory,
        ROOMCAST_EDGE__MAX_CONNECTIONS=str(LIMIT),
        ROOMCAST_EDGE__MAX_FRAGMENTS=str(MAX_FRAGMENTS),
    ) as shared:
        yield shared


@pytest_asyncio.fixture
async def publisher(infra: Infra, edge: SharedEdge) -> AsyncIterator[Publisher]:
    async with bus_publisher(infra, edge.topic) as publisher:
        yield publisher


# ---- the well-behaved client ---------------------------------------------------------


class GoodClient:
    """Measures its ping round trip and records every push it receives."""

    def __init__(self, ws: ClientConnection, record: ClientRecord) -> None:
        self.ws = ws
        self.record = record
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                body = json.loads(raw)
                if "meta" in body:
                    self.record.push(body)
                    self._changed.set()
                    continue
                waiter = self._waiting.pop(str(body.get("request_id")), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
        except websockets.ConnectionClosed:
            pass
        finally:
            self._changed.set()

    async def round_trip(self) -> float:
        request_id = uuid.uuid4().hex
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = waiter
        started = time.perf_counter()
        await self.ws.send(json.dumps({"request_id": request_id, "action": "ping"}))
        await asyncio.wait_for(waiter, WAIT)
        return time.perf_counter() - started

    async def round_trips(self, count: int = SAMPLES) -> list[float]:
        times = []
        for _ in range(count):
            times.append(await self.round_trip())
            await asyncio.sleep(GAP)
        return times

    async def wait_for(self, message_ids: list[str]) -> None:
        async def until() -> None:
            while not {m for m, _ in self.record.received} >= set(message_ids):
                assert not self._task.done(), f"the good client was closed ({self.ws.close_code})"
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(until(), WAIT * 3)

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.wait_for(self._task, WAIT)


@dataclass
class Flood:
    """A flood run in threads until stopped; `errors` collects what its threads raised."""

    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[BaseException] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, what: str) -> None:
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def run(self, body: Callable[[Flood], None], threads: int) -> list[threading.Thread]:
        def guarded() -> None:
            try:
                while not self.stop.is_set():
                    body(self)
            except BaseException as exc:  # reported by the test, not lost in a thread
                self.errors.append(exc)

        started = [threading.Thread(target=guarded, daemon=True) for _ in range(threads)]
        for thread in started:
            thread.start()
        return started


async def _under_flood(
    edge: SharedEdge,
    publisher: Publisher,
    body: Callable[[Flood], None],
    threads: int = 1,
    warm_up: Callable[[Flood], bool] | None = None,
) -> Flood:
    """Baseline round trips, then the same during the flood while pushes are published;
    checks deliveries and the round-trip ratio, and returns the flood for its counts."""
    ledger = Ledger()
    ws, hello = await connect(edge.edge, token=token(), roomIds=ROOM)
    good = GoodClient(ws, ledger.client("good", hello, []))
    await good.round_trips(10)  # warm both ends up
    before = await good.round_trips()

    flood = Flood()
    workers = flood.run(body, threads)
    try:
        deadline = time.monotonic() + WAIT
        while warm_up is not None and not warm_up(flood):
            assert not flood.errors, flood.errors
            assert time.monotonic() < deadline, f"the flood never got going: {flood.counts}"
            await asyncio.sleep(0.05)
        sent: list[str] = []
        during: list[float] = []
        for round_ in range(4):
            sent += await publish_direct(publisher, ledger, 5, room=ROOM, first=round_ * 5)
            during += await good.round_trips(SAMPLES // 4)
        assert not flood.errors, flood.errors
    finally:
        flood.stop.set()
        for worker in workers:
            await asyncio.to_thread(worker.join, WAIT)
    assert not flood.errors, flood.errors

    await good.wait_for(sent)
    await good.close()
    report = ledger.check()
    assert report.ok, report.text()
    assert report.clients[0].delivered == len(sent)
    _assert_within_ratio(before, during, flood)
    return flood


def _p90(times: list[float]) -> float:
    return statistics.quantiles(times, n=10)[-1]


def _assert_within_ratio(before: list[float], during: list[float], flood: Flood) -> None:
    shown = (
        f"before: median {statistics.median(before) * 1000:.1f} ms, p90 "
        f"{_p90(before) * 1000:.1f} ms; during: median {statistics.median(during) * 1000:.1f}"
        f" ms, p90 {_p90(during) * 1000:.1f} ms; flood {flood.counts}"
    )
    print(shown)  # the measured numbers, for -rP
    assert statistics.median(during) <= RATIO * statistics.median(before) + FLOOR, shown
    assert _p90(during) <= RATIO * _p90(before) + FLOOR, shown


# ---- raw blocking clients for the flood threads -----------------------------------------


def _masked(opcode: int, payload: bytes = b"", fin: bool = True) -> bytes:
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    if size < 126:
        head = bytes((first, 0x80 | size))
    elif size < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, size)
    mask = os.urandom(4)
    key = (mask * (size // 4 + 1))[:size]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")
    return head + mask + body


def _upgrade_request(port: int, query: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET /ws?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


class Raw:
    """A blocking socket that asks for an upgrade; `status` is the edge's answer."""

    def __init__(self, port: int, request: bytes) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.rest = b""
        self.status = 0
        try:
            self.sock.sendall(request)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                head += chunk
        except ConnectionError:
            return  # refused while the request was still being sent: status stays 0
        line, _, _ = head.partition(b"\r\n")
        if line:
            self.status = int(line.split()[1])
        self.rest = head.partition(b"\r\n\r\n")[2]

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close_code(self) -> int | None:
        """Read until the edge's close frame (skipping anything before); its code."""
        data = self.rest
        while True:
            while len(data) >= 2:
                size = data[1] & 0x7F
                start = 2 + {126: 2, 127: 8}.get(size, 0)
                if size >= 126:
                    size = int.from_bytes(data[2:start], "big")
                if len(data) < start + size:
                    break
                if data[0] & 0x0F == 0x8:
                    return int.from_bytes(data[start : start + 2], "big") if size else None
                data = data[start + size :]
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            data += chunk

    def close(self) -> None:
        self.sock.close()


# ---- (a) fragments: a text frame without FIN, then empty continuations ----------------

EMPTY_CONTINUATIONS = 40_000


async def test_empty_continuation_floods_leave_the_others_served(
    edge: SharedEdge, publisher: Publisher
) -> None:
    port = edge.edge.port
    flood_bytes = _masked(0x1, b"{", fin=False) + _masked(0x0, fin=False) * EMPTY_CONTINUATIONS

    def fragments(flood: Flood) -> None:
        raw = Raw(port, _upgrade_request(port, urllib.parse.urlencode({"token": token()})))
        try:
            if raw.status != 101:
                flood.count(f"status {raw.status}")
                return
            with contextlib.suppress(ConnectionError):  # the edge may end it first
                raw.send(flood_bytes)
            flood.count(f"closed {raw.close_code()}")
        finally:
            raw.close()

    flood = await _under_flood(
        edge, publisher, fragments, threads=2, warm_up=lambda f: f.counts.get("closed 1009", 0) > 0
    )
    # Every flooding connection was cut at MAX_FRAGMENTS with 1009, none got further.
    assert set(flood.counts) == {"closed 1009"}, flood.counts


# ---- (b) connect URLs with huge topics/roomIds lists ---------------------------------

HUGE_LIST = 100_000  # entries in each of topics and roomIds: 2 MB of URL


def _list_query(entries: int) -> str:
    topics = ",".join(f"t{i}:e{i}" for i in range(entries))
    rooms = ",".join(f"r{i}" for i in range(entries))
    return f"token={token()}&topics={topics}&roomIds={rooms}"


def _longest_accepted_query(port: int) -> str:
    """The longest list query the edge's HTTP parser still reads (its line limit)."""
    low, high = 1, 4000
    while low < high:
        mid = (low + high + 1) // 2
        raw = Raw(port, _upgrade_request(port, _list_query(mid)))
        raw.close()
        if raw.status == 101:
            low = mid
        else:
            high = mid - 1
    return _list_query(low)


async def test_huge_connect_lists_leave_the_others_served(
    edge: SharedEdge, publisher: Publisher
) -> None:
    port = edge.edge.port
    longest = _upgrade_request(port, await asyncio.to_thread(_longest_accepted_query, port))
    huge = _upgrade_request(port, _list_query(HUGE_LIST))

    def lists(flood: Flood) -> None:
        # Lists as long as a request line may be, as fast as the edge answers: all of
        # each is read by the edge's own parsing.
        raw = Raw(port, longest)
        raw.close()
        flood.count(f"longest: {raw.status}")

    def huge_lists(flood: Flood) -> None:
        # Megabytes of list, back to back: the HTTP parser refuses each at its line
        # limit, and the edge reads no more of a request it has refused.
        raw = Raw(port, huge)
        raw.close()
        flood.count(f"huge: {raw.status}")

    def both(flood: Flood) -> None:
        with flood.lock:
            kind = flood.counts.setdefault("threads", 0)
            flood.counts["threads"] += 1
        body = huge_lists if kind == 0 else lists
        while not flood.stop.is_set():
            body(flood)

    flood = await _under_flood(edge, publisher, both, threads=2)
    # The huge lists are refused by the HTTP parser (or cut off while still being
    # sent), never with a 5xx; the longest readable ones are upgraded.
    assert flood.counts.get("longest: 101", 0) > 0, flood.counts
    assert flood.counts.get("huge: 400", 0) + flood.counts.get("huge: 0", 0) > 0, flood.counts
    assert set(flood.counts) <= {"threads", "longest: 101", "huge: 400", "huge: 0"}, flood.counts


# ---- (c) subscribe with since / unsubscribe, at the rate limit, over a large history -----

HISTORY = 50_000
CHURNERS = 4
REQUEST_RATE = 45.0  # per second and connection, under the limit of 50


def _paced(flood: Flood, raw: Raw, frames: list[bytes]) -> None:
    """Send the frames in turn at REQUEST_RATE until the flood stops; drop the replies."""
    raw.sock.setblocking(False)
    step = 1 / REQUEST_RATE
    next_at = time.monotonic()
    sent = 0
    while not flood.stop.is_set():
        raw.sock.setblocking(True)
        raw.send(frames[sent % len(frames)])
        raw.sock.setblocking(False)
        sent += 1
        flood.count("requests")
        with contextlib.suppress(BlockingIOError):
            while raw.sock.recv(65536):
                pass
        next_at += step
        time.sleep(max(0.0, next_at - time.monotonic()))


def _request_frame(action: str, params: dict[str, Any]) -> bytes:
    body = json.dumps({"request_id": uuid.uuid4().hex[:8], "action": action, "params": params})
    return _masked(0x1, body.encode())


async def test_since_subscribe_churn_over_a_large_history_leaves_the_others_served(
    edge: SharedEdge, publisher: Publisher
) -> None:
    for start in range(0, HISTORY, 10_000):
        await publisher.send_many(
            [message({"n": n}, topic="filler") for n in range(start, start + 10_000)]
        )
    await eventually(
        lambda: metrics(edge.edge).get("roomcast_edge_history_messages", 0),
        lambda n: n >= HISTORY,
        WAIT * 3,
        "history filled",
    )
    port = edge.edge.port
    # Older than anything held: the edge must find what matches (nothing), not walk it all.
    since = ",".join(f"{p}:0" for p in range(3))
    frames = [
        _request_frame("subscribe", {"topic": "churn", "since": since}),
        _request_frame("unsubscribe", {"topic": "churn"}),
    ]

    def churn(flood: Flood) -> None:
        raw = Raw(port, _upgrade_request(port, urllib.parse.urlencode({"token": token()})))
        try:
            assert raw.status == 101, raw.status
            _paced(flood, raw, frames)
        finally:
            raw.close()

    served_before = _requests_served(edge)
    flood = await _under_flood(edge, publisher, churn, threads=CHURNERS)
    # The churn was served, not refused by the rate limit.
    assert _requests_served(edge) - served_before >= flood.counts["requests"] * 0.9, flood.counts


def _requests_served(edge: SharedEdge) -> float:
    return metrics(edge.edge).get('roomcast_edge_requests_total{status="ok"}', 0.0)


# ---- (d) since naming thousands of bogus partitions --------------------------------------

BOGUS = 4_000  # the most a position vector may name


async def test_bogus_since_partitions_leave_the_others_served(
    edge: SharedEdge, publisher: Publisher
) -> None:
    port = edge.edge.port
    bogus = ",".join(f"{p}:{p}" for p in range(1000, 1000 + BOGUS))
    frames = [
        _request_frame("subscribe", {"topic": "bogus", "since": bogus}),
        _request_frame("unsubscribe", {"topic": "bogus"}),
        _request_frame("join", {"room": "bogus", "since": bogus}),
        _request_frame("leave", {"room": "bogus"}),
    ]
    connect_since = ",".join(f"{p}:{p}" for p in range(1000, 1500))  # fits a request line

    def bogus_requests(flood: Flood) -> None:
        query = f"token={token()}&since={connect_since}"
        raw = Raw(port, _upgrade_request(port, query))
        try:
            assert raw.status == 101, raw.status
            _paced(flood, raw, frames)
        finally:
            raw.close()

    served_before = _requests_served(edge)
    flood = await _under_flood(edge, publisher, bogus_requests)  # one client, at its rate limit
    assert _requests_served(edge) - served_before >= flood.counts["requests"] * 0.9, flood.counts


# ---- (e) a handshake storm past MAX_CONNECTIONS ----------------------------------------

FREE = 5  # slots left open when the storm begins


async def test_a_handshake_storm_past_the_limit_leaves_the_others_served(
    edge: SharedEdge, publisher: Publisher
) -> None:
    port = edge.edge.port
    fillers = [await connect(edge.edge, token=token()) for _ in range(LIMIT - 1 - FREE)]
    upgraded: list[Raw] = []
    lock = threading.Lock()

    def storm(flood: Flood) -> None:
        raw = Raw(port, _upgrade_request(port, urllib.parse.urlencode({"token": token()})))
        flood.count(f"status {raw.status}")
        if raw.status == 101:
            with lock:
                upgraded.append(raw)  # holds its slot until the end
        else:
            raw.close()

    try:
        flood = await _under_flood(edge, publisher, storm, threads=6)
        open_now = metrics(edge.edge)["roomcast_edge_connections"]
    finally:
        for raw in upgraded:
            raw.close()
        for ws, _ in fillers:
            await ws.close()
    # Only the slots left free when it began went to the storm.
    assert flood.counts.get("status 101", 0) <= FREE, flood.counts
    assert set(flood.counts) <= {"status 101", "status 503"}, flood.counts
    assert open_now <= LIMIT
