"""The load generator: worker processes, each holding many picows client connections.

A worker counts the benchmark pushes each of its connections gets and the
publish-to-deliver latency of every delivery. Two client protocols: roomcast's shape
(subscriptions in the URL, a `connected` message, one push per frame), which the Node
and naive peers speak too, and Centrifugo's JSON protocol (a `connect` command with the
token, then one `subscribe` per channel; pushes newline-joined in a frame, pings `{}`
answered with `{}`). Identical pushes reach every connection as
the same bytes, so a worker parses each distinct push once and looks the others up: the
client stays cheap enough not to be what is measured. The driver talks to its workers
over pipes with small commands (connect, reset, stats, close, quit).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import time
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import orjson
import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from bench.messages import centrifugo_sent_time, is_connected, sent_time
from bench.system import cpu_times, raise_nofile_limit

ROOMCAST_PROTOCOL = "roomcast"
CENTRIFUGO_PROTOCOL = "centrifugo"
PROTOCOLS = (ROOMCAST_PROTOCOL, CENTRIFUGO_PROTOCOL)


@dataclass(frozen=True, slots=True)
class Dial:
    """One connection to open: where, as whom, to which channels; `key` names it in stats."""

    url: str
    key: int
    token: str = ""
    channels: tuple[str, ...] = ()


@dataclass
class Tally:
    """What one worker has seen since the last reset."""

    sent_times: dict[bytes, float] = field(default_factory=dict)
    latencies: array[float] = field(default_factory=lambda: array("d"))
    last_delivery: float = 0.0
    closed: int = 0


class Client(WSListener):
    def __init__(self, tally: Tally, ready: asyncio.Future[bool]) -> None:
        super().__init__()
        self.tally = tally
        self.ready = ready
        self.count = 0

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type != WSMsgType.TEXT:
            if frame.msg_type == WSMsgType.CLOSE:
                transport.disconnect()
            return
        data = frame.get_payload_as_bytes()
        tally = self.tally
        sent = tally.sent_times.get(data)
        if sent is None:
            sent = sent_time(data)
            if sent is None:
                if not self.ready.done() and is_connected(data):
                    self.ready.set_result(True)
                return
            tally.sent_times[data] = sent
        now = time.time()
        self.count += 1
        tally.latencies.append(now - sent)
        tally.last_delivery = now

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.tally.closed += 1
        if not self.ready.done():
            self.ready.set_result(False)


def centrifugo_commands(dial: Dial) -> tuple[bytes, bytes]:
    """The connect command, and the subscribe commands sent once it is answered (ids 2..)."""
    connect = orjson.dumps({"id": 1, "connect": {"token": dial.token}})
    subscribes = b"\n".join(
        orjson.dumps({"id": i + 2, "subscribe": {"channel": channel}})
        for i, channel in enumerate(dial.channels)
    )
    return connect, subscribes


class CentrifugoClient(Client):
    """Centrifugo's bidirectional JSON protocol, as its SDKs speak it."""

    def __init__(self, tally: Tally, ready: asyncio.Future[bool], dial: Dial) -> None:
        super().__init__(tally, ready)
        self.connect_command, self.subscribe_commands = centrifugo_commands(dial)
        self.pending = len(dial.channels)

    def on_ws_connected(self, transport: WSTransport) -> None:
        transport.send(WSMsgType.TEXT, self.connect_command)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type != WSMsgType.TEXT:
            if frame.msg_type == WSMsgType.CLOSE:
                transport.disconnect()
            return
        tally = self.tally
        for line in frame.get_payload_as_bytes().split(b"\n"):
            sent = tally.sent_times.get(line)
            if sent is None:
                if not line:
                    continue
                sent = centrifugo_sent_time(line)
                if sent is None:
                    self._control(transport, line)
                    continue
                tally.sent_times[line] = sent
            now = time.time()
            self.count += 1
            tally.latencies.append(now - sent)
            tally.last_delivery = now

    def _control(self, transport: WSTransport, line: bytes) -> None:
        if line == b"{}":
            # The server's ping: unanswered, it closes the connection after pong_timeout.
            transport.send(WSMsgType.TEXT, b"{}")
            return
        try:
            reply = orjson.loads(line)
        except orjson.JSONDecodeError:
            return
        if not isinstance(reply, dict) or self.ready.done():
            return
        if "error" in reply:
            self.ready.set_result(False)
        elif reply.get("id") == 1 and "connect" in reply:
            if self.pending == 0:
                self.ready.set_result(True)
            else:
                transport.send(WSMsgType.TEXT, self.subscribe_commands)
        elif "subscribe" in reply:
            self.pending -= 1
            if self.pending == 0:
                self.ready.set_result(True)


class Worker:
    def __init__(self) -> None:
        self.tally = Tally()
        self.connections: list[tuple[WSTransport, Client]] = []
        self.keys: list[int] = []

    async def connect(
        self, dials: list[Dial], concurrency: int, timeout: float, protocol: str
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(concurrency)
        errors: Counter[str] = Counter()

        def listener(dial: Dial, ready: asyncio.Future[bool]) -> Client:
            if protocol == CENTRIFUGO_PROTOCOL:
                return CentrifugoClient(self.tally, ready, dial)
            return Client(self.tally, ready)

        async def one(dial: Dial) -> None:
            async with gate:
                ready: asyncio.Future[bool] = loop.create_future()
                try:
                    transport, client = await ws_connect(
                        lambda: listener(dial, ready), dial.url, websocket_handshake_timeout=timeout
                    )
                except Exception as exc:  # every failure is counted, none stops the run
                    errors[type(exc).__name__] += 1
                    return
                assert isinstance(client, Client)
                try:
                    ok = await asyncio.wait_for(ready, timeout)
                except TimeoutError:
                    ok = False
                if ok:
                    self.connections.append((transport, client))
                    self.keys.append(dial.key)
                else:
                    errors["no connected message"] += 1
                    transport.disconnect()

        started = time.time()
        await asyncio.gather(*(one(dial) for dial in dials))
        return {
            "opened": len(self.connections),
            "failed": sum(errors.values()),
            "errors": dict(errors),
            "started": started,
            "finished": time.time(),
        }

    async def reset(self) -> None:
        self.tally = Tally()
        for _, client in self.connections:
            client.tally = self.tally
            client.count = 0

    async def stats(self) -> dict[str, Any]:
        return {
            "counts": [client.count for _, client in self.connections],
            "keys": list(self.keys),
            "latencies": self.tally.latencies.tobytes(),
            "last_delivery": self.tally.last_delivery,
            "closed": self.tally.closed,
        }

    async def progress(self) -> tuple[int, float]:
        return sum(client.count for _, client in self.connections), self.tally.last_delivery

    async def close(self) -> None:
        for transport, _ in self.connections:
            transport.disconnect()
        self.connections.clear()
        self.keys.clear()
        await asyncio.sleep(0.2)


async def _serve(conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    worker = Worker()
    while True:
        # A blocking read in a thread: the loop's own readers would make the pipe
        # non-blocking, and large commands (thousands of URLs) arrive in several reads.
        command, args = await loop.run_in_executor(None, conn.recv)
        if command == "quit":
            await worker.close()
            conn.send(("ok", None))
            return
        try:
            result = await getattr(worker, command)(*args)
        except Exception as exc:
            conn.send(("error", f"{command}: {exc!r}"))
        else:
            conn.send(("ok", result))


def worker_main(conn: Connection, cpus: frozenset[int] | None) -> None:
    if cpus:
        os.sched_setaffinity(0, cpus)
    raise_nofile_limit()
    uvloop.run(_serve(conn))


@dataclass(frozen=True, slots=True)
class Stats:
    counts: list[int]
    # the Dial key of each entry of counts
    keys: list[int]
    latencies: list[float]
    last_delivery: float
    closed: int


class LoadGenerator:
    """A pool of worker processes; connections are spread over them round-robin."""

    def __init__(self, workers: int, cpus: frozenset[int] | None) -> None:
        self._cpus = cpus
        self._size = workers
        self._pipes: list[Connection] = []
        self._procs: list[BaseProcess] = []

    def start(self) -> None:
        context = multiprocessing.get_context("spawn")
        for index in range(self._size):
            ours, theirs = context.Pipe()
            proc = context.Process(
                target=worker_main, args=(theirs, self._cpus), name=f"bench-load-{index}"
            )
            proc.daemon = True
            proc.start()
            theirs.close()
            self._pipes.append(ours)
            self._procs.append(proc)

    def _call(self, pipe: Connection, command: str, args: tuple[Any, ...]) -> Any:
        pipe.send((command, args))
        status, result = pipe.recv()
        if status != "ok":
            raise RuntimeError(f"load worker failed: {result}")
        return result

    async def _all(self, command: str, per_worker: Sequence[tuple[Any, ...]]) -> list[Any]:
        loop = asyncio.get_running_loop()
        calls = [
            loop.run_in_executor(None, self._call, pipe, command, args)
            for pipe, args in zip(self._pipes, per_worker, strict=True)
        ]
        return list(await asyncio.gather(*calls))

    async def connect(
        self,
        urls: Sequence[str | Dial],
        concurrency: int = 64,
        timeout: float = 60.0,
        protocol: str = ROOMCAST_PROTOCOL,
    ) -> dict[str, Any]:
        """Open every URL; returns opened/failed counts, error kinds and the wall-clock span.

        A plain URL is keyed by its index in `urls`.
        """
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown client protocol {protocol!r}")
        dials = [u if isinstance(u, Dial) else Dial(u, i) for i, u in enumerate(urls)]
        shares = [dials[i :: self._size] for i in range(self._size)]
        results = await self._all("connect", [(s, concurrency, timeout, protocol) for s in shares])
        errors: Counter[str] = Counter()
        for result in results:
            errors.update(result["errors"])
        return {
            "opened": sum(r["opened"] for r in results),
            "failed": sum(r["failed"] for r in results),
            "errors": dict(errors),
            "started": min(r["started"] for r in results),
            "finished": max(r["finished"] for r in results),
        }

    async def reset(self) -> None:
        await self._all("reset", [()] * self._size)

    async def stats(self) -> Stats:
        results = await self._all("stats", [()] * self._size)
        counts: list[int] = []
        keys: list[int] = []
        latencies: list[float] = []
        for result in results:
            counts.extend(result["counts"])
            keys.extend(result["keys"])
            values: array[float] = array("d")
            values.frombytes(result["latencies"])
            latencies.extend(values)
        return Stats(
            counts=counts,
            keys=keys,
            latencies=latencies,
            last_delivery=max(r["last_delivery"] for r in results),
            closed=sum(r["closed"] for r in results),
        )

    async def progress(self) -> tuple[int, float]:
        """Deliveries counted so far and the time of the last one (no latencies shipped)."""
        results = await self._all("progress", [()] * self._size)
        return sum(r[0] for r in results), max(r[1] for r in results)

    async def close(self) -> None:
        await self._all("close", [()] * self._size)

    def cpu_seconds(self) -> float:
        """CPU (user + kernel) the worker processes have used so far, all together."""
        total = 0.0
        for proc in self._procs:
            if proc.pid is not None:
                with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                    total += cpu_times(proc.pid).total
        return total

    def stop(self) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(OSError, EOFError, RuntimeError):
                self._call(pipe, "quit", ())
        for proc in self._procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        self._pipes.clear()
        self._procs.clear()

    def __enter__(self) -> LoadGenerator:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
