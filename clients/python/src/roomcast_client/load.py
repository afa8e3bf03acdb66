"""`roomcast load`: N connections, and messages published to them at a set rate.

Publish mode (`--rate R`, the default): every message goes through the publisher to
the connections' first room and/or topic, so each should reach all N connections once;
the summary compares what arrived with that. Listen mode (`--rate 0`) only counts what
others publish.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, TextIO

import aiohttp

from roomcast_client.client import Push, RoomcastClient
from roomcast_client.http import publish
from roomcast_client.pacing import Schedule, Tally, run_schedule
from roomcast_client.stats import LatencyStats, receive_latency


@dataclass(frozen=True)
class LoadPlan:
    edge: str
    publisher: str
    connections: int
    duration: float
    rate: float  # messages per second; 0: listen only
    rooms: tuple[str, ...] = ()
    subscriptions: tuple[tuple[str, str], ...] = ()
    publisher_key: str | None = None
    # seconds to wait, after the last publish, for the last deliveries
    settle: float = 10.0

    @property
    def publishing(self) -> bool:
        return self.rate > 0

    def target(self) -> dict[str, str]:
        """Where published messages go: the first room and/or topic the connections use."""
        address: dict[str, str] = {}
        if self.rooms:
            address["room"] = self.rooms[0]
        if self.subscriptions:
            topic, type_ = self.subscriptions[0]
            address["topic"] = topic
            # A subscription to every type ("*") takes any: publish a concrete one.
            address["type"] = "event" if type_ == "*" else type_
        return address

    def describe(self) -> str:
        """The mode line printed before the run."""
        address = self.target()
        parts = []
        if "room" in address:
            parts.append(f"room {address['room']}")
        if "topic" in address:
            parts.append(f"topic {address['topic']}:{address['type']}")
        where = " and ".join(parts) or "everyone (a broadcast)"
        listeners = f"{self.connections} connections on {self.edge}"
        if not self.publishing:
            return (
                f"mode: listen only (--rate 0): {listeners} count what others publish to"
                f" {where} for {self.duration:g} s"
            )
        return (
            f"mode: publish {self.rate:g} msg/s for {self.duration:g} s to {where} through"
            f" {self.publisher}; {listeners} (--rate 0: listen only)"
        )


@dataclass
class _Deliveries:
    run_id: str
    ours: int = 0  # pushes of messages this run published
    others: int = 0  # anything else that reached the connections
    latency: LatencyStats = field(default_factory=LatencyStats)
    # set once `ours` reaches what `expect` was told
    complete: asyncio.Event = field(default_factory=asyncio.Event)
    _expected: int | None = None

    def count(self, push: Push, publishing: bool) -> None:
        if publishing and not push.message_id.startswith(self.run_id):
            self.others += 1
            return
        self.ours += 1
        latency = receive_latency(push)
        if latency is not None:
            self.latency.add(latency)
        self._check()

    def expect(self, total: int) -> None:
        self._expected = total
        self._check()

    def _check(self) -> None:
        if self._expected is not None and self.ours >= self._expected:
            self.complete.set()


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


async def run_load(
    plan: LoadPlan, session: aiohttp.ClientSession, token: str, out: TextIO = sys.stderr
) -> dict[str, Any]:
    """Run the plan; return the summary (`complete` false when a delivery is missing)."""
    print(plan.describe(), file=out, flush=True)
    deliveries = _Deliveries(run_id=f"load-{uuid.uuid4().hex[:8]}-")
    clients = [
        RoomcastClient(
            plan.edge,
            token,
            rooms=plan.rooms,
            subscriptions=plan.subscriptions,
            session=session,
            ping_interval=20,
        )
        for _ in range(plan.connections)
    ]
    opened = 0
    for start in range(0, len(clients), 100):
        batch = clients[start : start + 100]
        await asyncio.gather(*(c.connect() for c in batch))
        opened += len(batch)
        print(f"\rconnected {opened}/{len(clients)}", end="", file=out, flush=True)
    print(file=out)

    async def drain(client: RoomcastClient) -> None:
        async for push in client.messages():
            deliveries.count(push, plan.publishing)

    tally = Tally()

    async def send(index: int) -> None:
        address = plan.target()
        await publish(
            session,
            plan.publisher,
            {"n": index},
            topic=address.get("topic"),
            type_=address.get("type"),
            room=address.get("room"),
            message_id=f"{deliveries.run_id}{index}",
            api_key=plan.publisher_key,
        )

    def expected() -> int:
        return tally.sent * plan.connections

    def progress() -> None:
        sent = f"sent {tally.sent}  " if plan.publishing else ""
        wanted = f"/{expected()}" if plan.publishing else ""
        print(
            f"\r{sent}{deliveries.ours}{wanted} received  p50"
            f" {deliveries.latency.percentile(50) * 1000:.1f} ms"
            f"  p99 {deliveries.latency.percentile(99) * 1000:.1f} ms",
            end="",
            file=out,
            flush=True,
        )

    readers = [asyncio.create_task(drain(c)) for c in clients]
    publishing: asyncio.Task[Tally] | None = None
    try:
        if plan.publishing:
            schedule = Schedule(plan.rate, plan.duration)
            publishing = asyncio.create_task(
                run_schedule(schedule, send, clock=time.monotonic, tally=tally)
            )
        deadline = time.monotonic() + plan.duration
        while time.monotonic() < deadline:
            await asyncio.sleep(min(1.0, max(deadline - time.monotonic(), 0)))
            progress()
        if publishing is not None:
            await publishing
            deliveries.expect(expected())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(deliveries.complete.wait(), plan.settle)
            progress()
        print(file=out)
    finally:
        if publishing is not None:
            publishing.cancel()
        for task in readers:
            task.cancel()
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()
    summary: dict[str, Any] = {
        "mode": "publish" if plan.publishing else "listen",
        "connections": plan.connections,
        "received": deliveries.ours,
        "latency_ms": {
            "p50": _ms(deliveries.latency.percentile(50)),
            "p99": _ms(deliveries.latency.percentile(99)),
            "max": _ms(deliveries.latency.percentile(100)),
        },
    }
    if plan.publishing:
        summary.update(
            rate=plan.rate,
            published=tally.sent,
            publish_failures=tally.failed,
            expected=expected(),
            missing=max(expected() - deliveries.ours, 0),
            others=deliveries.others,
            complete=deliveries.ours == expected() and tally.failed == 0,
        )
        if tally.last_error:
            summary["last_publish_error"] = tally.last_error
    return summary
