"""This edge's side of shared presence: batched writes and reads, heartbeat, sweep.

Connects, joins, leaves and closes only record a change (`update`, synchronous, no
I/O): the changes of the next 20 ms go to Redis together in one pipeline, and while
it is in flight the next ones gather. A `presence` read cuts the wait short: it goes
at the end of its loop turn, with the changes gathered so far ahead of it (an edge
reads its own writes). A storm of ten thousand connects into one room costs a
handful of round trips, not ten thousand.

Redis being away never blocks a connect or a push: changes wait (one per room and
connection, so the backlog is bounded by what this edge holds) and are sent again
when Redis answers, reads fail at once, and the state shows in /readyz and metrics.

Every edge renews a heartbeat deadline (PRESENCE_TTL ahead) and sweeps: the members
of an edge whose deadline passed are removed by whichever live edge gets there
first, with the leaves and webhooks they owe. An edge that finds itself swept (a
long pause, Redis restarted) writes its memberships again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.exceptions import NoScriptError

from roomcast_core.presence_store import (
    NOTICE_CHANNEL,
    Change,
    Outlets,
    PresenceStore,
    presence_body,
)
from roomcast_edge.domain.presence import Ledger, Member, Pending

log = logging.getLogger(__name__)

# Changes per script run: one run holds Redis for well under a millisecond.
CHUNK = 1000
# Members of a dead edge removed per script run, and runs per sweep at most.
SWEEP_CHUNK = 500
SWEEP_RUNS = 200
# Seconds between attempts while Redis does not answer.
RETRY_SECONDS = 1.0
# Seconds a flush waits for more changes first: handshakes arriving a few at a time
# share a round trip instead of costing one each. A round trip costs the edge about
# half a millisecond of CPU whatever it carries (the pipeline, the socket, waking up),
# so at thousands of handshakes a second the wait decides what presence costs; joins
# are promised visible within 2 s, and 20 ms of it goes unnoticed.
GATHER_SECONDS = 0.02


class PresenceMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.members = Gauge(
            "roomcast_edge_presence_members",
            "Room memberships of this edge's connections",
            registry=registry,
        )
        self.pending = Gauge(
            "roomcast_edge_presence_pending",
            "Presence changes waiting to be written to Redis",
            registry=registry,
        )
        self.degraded = Gauge(
            "roomcast_edge_presence_degraded",
            "1 while presence cannot be written to or read from Redis",
            registry=registry,
        )
        self.flushes = Counter(
            "roomcast_edge_presence_flushes",
            "Round trips writing presence changes and reading presence",
            registry=registry,
        )
        self.changes = Counter(
            "roomcast_edge_presence_changes", "Presence changes written", registry=registry
        )
        self.errors = Counter(
            "roomcast_edge_presence_errors",
            "Presence calls to Redis that failed, by call",
            ["call"],
            registry=registry,
        )
        self.swept = Counter(
            "roomcast_edge_presence_sweeps",
            "Script runs removing members of edges that died",
            registry=registry,
        )
        for call in ("flush", "heartbeat", "sweep", "notices"):
            self.errors.labels(call)


class BatchedPresence:
    """RoomPresence for the node (see domain.presence), backed by PresenceStore."""

    def __init__(
        self,
        store: PresenceStore,
        *,
        ttl: float,
        max_members: int,
        outlets: Outlets,
        metrics: PresenceMetrics,
        edge_id: str | None = None,
    ) -> None:
        self.store = store
        self.edge_id = edge_id or uuid.uuid4().hex
        self.ttl = ttl
        self.max_members = max_members
        self.outlets = outlets
        self.metrics = metrics
        self.ledger = Ledger()
        self.pending = Pending()
        self._queries: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self._flushing: asyncio.Task[None] | None = None
        # Set while a flush waits for more changes; a query ends the wait.
        self._gathering: asyncio.Future[None] | None = None
        # Why presence is not usable right now, or None.
        self.degraded: str | None = None
        metrics.members.set_function(lambda: self.ledger.count)
        metrics.pending.set_function(lambda: len(self.pending))
        metrics.degraded.set_function(lambda: 0 if self.degraded is None else 1)

    # ---- what the node calls (synchronous) ----------------------------------

    def update(self, member: Member, rooms: frozenset[str]) -> None:
        changes = self.ledger.diff(member, rooms, int(time.time() * 1000))
        if changes:
            self.pending.add(changes)
            self._kick()

    def query(self, room: str) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._queries.setdefault(room, []).append(future)
        gathering = self._gathering
        if gathering is not None and not gathering.done():
            gathering.set_result(None)
        self._kick()
        return future

    def _kick(self) -> None:
        # The task first runs after the callbacks already due: everything this
        # loop turn records goes in its first round trip.
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(
                self._flush(), name="presence-flush"
            )

    # ---- the flush ------------------------------------------------------------

    async def _flush(self) -> None:
        try:
            while len(self.pending) or self._queries:
                if self._queries:
                    await asyncio.sleep(0)  # the other requests of this loop turn join
                else:
                    await self._gather()
                if not await self._flush_once():
                    await asyncio.sleep(RETRY_SECONDS)
        finally:
            self._flushing = None

    async def _gather(self) -> None:
        loop = asyncio.get_running_loop()
        waiter = self._gathering = loop.create_future()
        timer = loop.call_later(GATHER_SECONDS, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._gathering = None

    async def _flush_once(self) -> bool:
        changes = self.pending.take()
        queries, self._queries = self._queries, {}
        chunks = [changes[i : i + CHUNK] for i in range(0, len(changes), CHUNK)]
        rooms = list(queries)
        try:
            async with self.store.client.pipeline(transaction=False) as pipe:
                for chunk in chunks:
                    self.store.queue_apply(pipe, self.edge_id, chunk, self.outlets)
                for room in rooms:
                    self.store.queue_read(pipe, room, self.max_members)
                results: Sequence[Any] = await pipe.execute(raise_on_error=False)
        except Exception as exc:
            self._failed(exc, changes, queries)
            return False
        if any(isinstance(r, NoScriptError) for r in results):
            # A Redis that restarted has no scripts: load them and send it all again.
            self.pending.restore(changes)
            for room, futures in queries.items():
                self._queries.setdefault(room, []).extend(futures)
            try:
                await self.store.load()
            except Exception as exc:
                self._failed(exc, [], {})
                return False
            return True
        self.metrics.flushes.inc()
        ok = True
        for chunk, result in zip(chunks, results, strict=False):
            if isinstance(result, Exception):
                self.pending.restore(chunk)
                self._failed(result, [], {})
                ok = False
            else:
                self.metrics.changes.inc(len(chunk))
        for room, result in zip(rooms, results[len(chunks) :], strict=True):
            for future in queries[room]:
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(presence_body(room, result))
        if ok:
            self.degraded = None
        return ok

    def _failed(
        self,
        exc: BaseException,
        changes: list[Change],
        queries: dict[str, list[asyncio.Future[dict[str, Any]]]],
    ) -> None:
        self.metrics.errors.labels("flush").inc()
        if self.degraded is None:
            log.warning("presence unwritable, changes kept", extra={"error": repr(exc)})
        self.degraded = f"presence unwritable ({len(self.pending) + len(changes)} changes kept)"
        self.pending.restore(changes)
        for futures in queries.values():
            for future in futures:
                if not future.done():
                    future.set_exception(ConnectionError("presence is unavailable"))

    # ---- heartbeat and sweep ------------------------------------------------------

    @property
    def interval(self) -> float:
        # Heartbeats a quarter TTL apart, a deadline of three quarters: a dead edge
        # is found by the next sweep (a quarter TTL later), within the TTL in all.
        return max(self.ttl / 4, 0.1)

    async def beat(self) -> bool:
        """Renew this edge's deadline; write everything again if it had been swept
        (then True)."""
        try:
            anew = await self.store.heartbeat(self.edge_id, int(self.ttl * 750))
        except Exception as exc:
            self.metrics.errors.labels("heartbeat").inc()
            self.degraded = self.degraded or "presence heartbeat failed"
            log.warning("presence heartbeat failed", extra={"error": repr(exc)})
            return False
        if self._flushing is None and not len(self.pending):
            self.degraded = None  # a flush still retrying clears it when it succeeds
        if anew and self.ledger.count:
            log.warning("this edge's presence was swept, writing it again")
            self.pending.restore(self.ledger.everything())
            self._kick()
            return True
        return False

    async def sweep(self) -> None:
        """Remove the members of edges whose heartbeat lapsed."""
        try:
            for _ in range(SWEEP_RUNS):
                if not await self.store.sweep(self.outlets, SWEEP_CHUNK):
                    return
                self.metrics.swept.inc()
        except Exception as exc:
            self.metrics.errors.labels("sweep").inc()
            log.warning("presence sweep failed", extra={"error": repr(exc)})

    async def run(self) -> None:
        """Heartbeat and sweep every quarter TTL, until cancelled."""
        while True:
            # Just found swept: its own grave is not swept before the members are
            # written back (the next round is a quarter TTL away), or they would flap.
            if not await self.beat():
                await self.sweep()
            await asyncio.sleep(self.interval)

    async def listen_notices(self, deliver: Callable[[str, str, bytes], None]) -> None:
        """Join/leave notices of every edge: deliver(room, connection_id, push), until cancelled.

        The script publishes a notice only for a user's first connection in or last
        out of a room, so these are per user; `connection_id` is the one that caused it.
        """
        while True:
            pubsub = self.store.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(NOTICE_CHANNEL)
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is not None:
                        for room, connection_id, push in notice_pushes(message["data"]):
                            deliver(room, connection_id, push)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.metrics.errors.labels("notices").inc()
                log.warning("presence notices lost, resubscribing", extra={"error": repr(exc)})
                await asyncio.sleep(RETRY_SECONDS)
            finally:
                with contextlib.suppress(Exception):  # the connection may be gone already
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def readiness(self) -> str | None:
        return self.degraded

    async def close(self, timeout: float) -> None:
        """At shutdown: write the leaves of the connections just closed, then retire."""
        flushing = self._flushing
        if flushing is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(flushing), timeout)
            if not flushing.done():
                flushing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flushing
        if not len(self.pending):
            with contextlib.suppress(Exception):
                await self.store.retire(self.edge_id)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def notice_pushes(data: bytes | str) -> list[tuple[str, str, bytes]]:
    """(room, connection_id, push) per notice of one published batch."""
    now = int(time.time() * 1000)
    pushes = []
    for event, room, member_json in orjson.loads(data):
        member = orjson.loads(member_json)
        push = orjson.dumps(
            {"action": "presence", "event": event, "room": room, "member": member, "timestamp": now}
        )
        pushes.append((room, str(member.get("connection_id", "")), push))
    return pushes
