"""Shared ingest, the receiving side: this edge's channels, and its gaps filled from the bus.

The hub says when a room or a topic gets its first connection here (`want`); the
channel is taken up at once in the inbox (its gap opens) and subscribed (SSUBSCRIBE).
It is let go (SUNSUBSCRIBE) only `linger` seconds after its last connection left, so
connections coming and going do not open a gap each time.

One pub/sub connection carries every channel, so confirmations and messages arrive in
the order Redis handled them (what the inbox relies on). A dropped link, or redis-py
subscribing again on a new connection by itself, is a gap on every channel: the
connection is made anew and the inbox told. Gaps are read from the bus's own log by
one reader of its own, so client recoveries never hold the live stream back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import redis.asyncio as aioredis

from roomcast_edge.domain.inbox import FillRead, Inbox
from roomcast_edge.domain.ports import ArchiveGone, StreamArchive
from roomcast_edge.domain.replay_index import Address
from roomcast_edge.domain.routing import (
    Routed,
    RouteError,
    Watermark,
    channel_of,
    decode,
    key_of_address,
)
from roomcast_edge.metrics import EdgeMetrics

log = logging.getLogger(__name__)

# Seconds a read of the link waits: also how soon a new subscription is sent.
POLL = 0.02
RETRY_SECONDS = 0.5
FILL_RECORDS = 1_000


class _LinkLost(Exception):
    """Redis subscribed again by itself: what came meanwhile is not known."""


class RouteListener:
    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        inbox: Inbox,
        archive: StreamArchive,
        metrics: EdgeMetrics,
        linger: float = 1.0,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._inbox = inbox
        self._archive = archive
        self._metrics = metrics
        self._linger = linger
        self._keys: dict[bytes, Address] = {}
        self._pending: list[tuple[bool, Address]] = []  # (subscribe, key) in order
        # Per channel, confirmations still to come for subscriptions sent.
        self._expect: dict[Address, int] = {}
        self._drops: dict[Address, asyncio.TimerHandle] = {}
        self._fills = asyncio.Event()
        inbox.on_fill = self._fills.set
        self.connected = False

    # ---- what the hub wants ------------------------------------------------------

    def want(self, key: tuple[str, str], wanted: bool) -> None:
        """The hub's `on_wanted`: a room or topic gained its first or lost its last
        connection on this edge."""
        if wanted:
            drop = self._drops.pop(key, None)
            if drop is not None:
                drop.cancel()
            if not self._inbox.holds(key):
                self._inbox.hold(key)
                self._subscribe(key)
        elif key not in self._drops:
            loop = asyncio.get_running_loop()
            self._drops[key] = loop.call_later(self._linger, self._drop, key)

    def _subscribe(self, key: Address) -> None:
        # Counted from now: an answer to an earlier subscription of the channel, still
        # on its way, must not pass for this one's.
        self._expect[key] = self._expect.get(key, 0) + 1
        self._pending.append((True, key))

    def _drop(self, key: Address) -> None:
        self._drops.pop(key, None)
        if self._inbox.holds(key):
            self._inbox.release(key)
            self._pending.append((False, key))

    def _channel(self, key: Address) -> str:
        name = channel_of(self._prefix, key)
        self._keys[name.encode()] = key
        return name

    # ---- the link ------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            pubsub = self._client.pubsub()
            try:
                self._pending = []
                self._expect.clear()
                for key in self._inbox.held:
                    self._subscribe(key)
                await self._listen(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("routing link lost, subscribing again", extra={"error": repr(exc)})
            finally:
                self.connected = False
                self._inbox.lost()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(RETRY_SECONDS)

    async def _listen(self, pubsub: Any) -> None:
        while True:
            await self._send_pending(pubsub)
            raw = await pubsub.get_message(timeout=POLL)
            self.connected = True
            if raw is None:
                continue
            kind = raw.get("type")
            if kind == "smessage":
                self._message(raw.get("channel"), raw.get("data"))
            elif kind == "ssubscribe":
                self._confirmed(raw.get("channel"))

    async def _send_pending(self, pubsub: Any) -> None:
        while self._pending:
            pending, self._pending = self._pending, []
            for subscribe, key in pending:
                if subscribe:
                    if not self._inbox.holds(key):
                        self._expect[key] -= 1  # let go before it was sent
                        continue
                    await pubsub.ssubscribe(self._channel(key))
                elif not self._inbox.holds(key):
                    name = self._channel(key)
                    await pubsub.sunsubscribe(name)
                    if not self._expect.get(key):  # no confirmation of it to come
                        self._keys.pop(name.encode(), None)
                        self._expect.pop(key, None)

    def _confirmed(self, channel: object) -> None:
        key = self._keys.get(channel) if isinstance(channel, bytes) else None
        if key is None:
            return
        held = self._inbox.holds(key)
        expected = self._expect.get(key, 0)
        if expected <= 0:
            if held:
                raise _LinkLost(f"subscribed again to {channel!r} without asking")
            return
        # Counted even for a channel let go meanwhile: a subscription sent again later
        # is confirmed by its own answer, not by this one.
        self._expect[key] = expected - 1
        if expected == 1 and held:
            self._inbox.confirmed(key)

    def _message(self, channel: object, data: object) -> None:
        if not isinstance(data, bytes):
            return
        try:
            routed = decode(data)
        except RouteError as exc:
            log.warning("unreadable routed message", extra={"error": str(exc)})
            return
        inbox = self._inbox
        if isinstance(routed, Watermark):
            inbox.watermark(routed)
            return
        self._metrics.routed.labels("in").inc(len(routed))
        for item in routed:
            inbox.receive(item)

    # ---- gaps ------------------------------------------------------------------------

    async def fill_forever(self) -> None:
        while True:
            read = self._inbox.next_read()
            if read is None:
                self._fills.clear()
                await self._fills.wait()
                continue
            try:
                found = await self._read(read)
            except asyncio.CancelledError:
                self._inbox.fill_failed(read)
                raise
            except ArchiveGone as gone:
                # Retention took it before this edge could read it: nothing to add.
                log.warning("gap older than the bus's log", extra={"error": str(gone)})
                found = []
            except Exception as exc:
                log.warning("reading a gap from the bus failed", extra={"error": repr(exc)})
                self._inbox.fill_failed(read)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            self._inbox.filled(read, found)

    async def _read(self, read: FillRead) -> list[Routed]:
        keys = read.keys

        def wanted(topic: str | None, type_: str | None, room: str | None) -> bool:
            return key_of_address(topic, room) in keys

        found: list[Routed] = []
        after = read.after
        async with self._archive.reader("fill") as reader:
            while after < read.upto:
                chunk = await reader.read(read.partition, after, read.upto, FILL_RECORDS, wanted)
                if chunk.last <= after:
                    raise OSError(f"no records came from partition {read.partition}")
                found.extend(Routed(p, None) for p in chunk.publications)
                self._metrics.archive_records.labels("fill").inc(chunk.last - after)
                after = chunk.last
        return found

    async def readiness(self) -> str | None:
        if not self.connected:
            return "routing link not connected"
        if not self._inbox.live:
            return "waiting for every partition to be routed"
        return None
