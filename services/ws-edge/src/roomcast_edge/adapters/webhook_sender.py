"""Webhook delivery from the outbox stream, run by every edge.

Each receiver URL has its own consumer group on the outbox stream; every edge is a
consumer of each group. New entries go to one edge (XREADGROUP), which posts them;
a 2xx answer acknowledges the entry (XACK). Anything else leaves it pending, and
every edge scans the pending entries: one idle for longer than its retry delay is
claimed (XCLAIM with that idle time, so of two edges scanning at once only one gets
it) and posted again. An edge that dies mid-delivery leaves its entries pending, so
a surviving or restarted edge delivers them: the outbox survives any restart, and
an entry is retried until a receiver acknowledges it or RETRY_FOR has passed.

Nothing here is on the path of a connection or a push: posts run in tasks of their
own, at most MAX_IN_FLIGHT per URL, each bounded by the timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, Gauge

from roomcast_core.settings import WebhookSettings
from roomcast_edge.domain import webhooks

log = logging.getLogger(__name__)

# Posts in flight per URL at most: a hanging receiver holds no more than this.
MAX_IN_FLIGHT = 16
# Entries read or claimed per call.
BATCH = 32
# Pending entries one XPENDING call returns, and looked at per scan at most: a scan
# goes on where the last one stopped, so with any backlog every entry comes round
# (in backlog / SCAN_ENTRIES scans), not only the oldest ones.
PAGE = 128
SCAN_ENTRIES = 1024
# Milliseconds XREADGROUP waits for new entries.
BLOCK_MS = 1000
# Seconds between scans of the pending entries, at most.
SCAN_SECONDS = 1.0
# Seconds between trims of entries past the retry window.
TRIM_SECONDS = 60.0
# Seconds to wait after Redis failed.
RETRY_SECONDS = 1.0


class WebhookMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "roomcast_webhook_deliveries",
            "Webhook posts by result: ok (2xx), failed (other answer, timeout, unreachable), "
            "given_up (retried for RETRY_FOR without success)",
            ["result"],
            registry=registry,
        )
        self.retries = Counter(
            "roomcast_webhook_retries",
            "Outbox entries claimed to be posted again",
            registry=registry,
        )
        self.backlog = Gauge(
            "roomcast_webhook_outbox_backlog",
            "Outbox entries not acknowledged yet (pending plus unread), all URLs together",
            registry=registry,
        )
        self.errors = Counter(
            "roomcast_webhook_redis_errors",
            "Outbox calls to Redis that failed",
            registry=registry,
        )
        for result in ("ok", "failed", "given_up"):
            self.deliveries.labels(result)


def group_name(url: str) -> str:
    return "webhook:" + hashlib.sha256(url.encode()).hexdigest()[:16]


class WebhookSender:
    def __init__(
        self,
        client: aioredis.Redis,
        settings: WebhookSettings,
        consumer: str,
        metrics: WebhookMetrics,
    ) -> None:
        self.client = client
        self.settings = settings
        self.stream = settings.stream
        self.consumer = consumer
        self.metrics = metrics
        self.schedule = webhooks.Schedule(
            settings.timeout, settings.retry_base, settings.retry_max, settings.retry_for
        )
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Deliver to every URL until cancelled."""
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            loops = [
                asyncio.create_task(self._serve(session, url), name="webhook-url")
                for url in self.settings.urls
            ]
            loops.append(asyncio.create_task(self._housekeep(), name="webhook-housekeeping"))
            try:
                await asyncio.gather(*loops)
            finally:
                for task in [*loops, *self._tasks]:
                    task.cancel()
                for task in [*loops, *self._tasks]:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    async def _ensure_group(self, group: str) -> None:
        try:
            # From the stream's start: entries queued before this URL's group existed
            # (by edges that started first) are delivered too.
            await self.client.xgroup_create(self.stream, group, id="0", mkstream=True)
        except aioredis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _serve(self, session: aiohttp.ClientSession, url: str) -> None:
        group = group_name(url)
        slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        scanned = 0.0
        failing = False
        # Where the next scan of the pending entries starts (an XPENDING range start).
        cursor = "-"
        while True:
            try:
                await self._ensure_group(group)
                if failing:
                    log.info("webhook outbox readable again", extra={"url": url})
                    failing = False
                while True:
                    now = time.monotonic()
                    if now - scanned >= SCAN_SECONDS:
                        scanned = now
                        cursor = await self._retry_pending(session, url, group, slots, cursor)
                    await self._read_new(session, url, group, slots)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.metrics.errors.inc()
                if not failing:  # once per outage, not once a second
                    log.warning("webhook outbox unreadable", extra={"error": repr(exc)})
                    failing = True
                await asyncio.sleep(RETRY_SECONDS)

    async def _read_new(
        self, session: aiohttp.ClientSession, url: str, group: str, slots: asyncio.Semaphore
    ) -> None:
        if slots.locked():  # every slot busy: leave new entries to other edges
            await asyncio.sleep(0.1)
            return
        reply: Any = await self.client.xreadgroup(
            group, self.consumer, {self.stream: ">"}, count=BATCH, block=BLOCK_MS
        )
        for _stream, entries in reply or ():
            await self._post_all(session, url, group, slots, entries)

    async def _retry_pending(
        self,
        session: aiohttp.ClientSession,
        url: str,
        group: str,
        slots: asyncio.Semaphore,
        start: str,
    ) -> str:
        """Retry the due entries among at most SCAN_ENTRIES pending ones from `start`
        on; returns where the next scan starts ("-" once the end was reached).

        Entries not due yet are passed over, never waited on: a scan that always began
        at the oldest would see only the oldest entries of a backlog against a failing
        receiver, and the newer ones would never be retried.
        """
        looked = 0
        while looked < SCAN_ENTRIES:
            pending = await self.client.xpending_range(
                self.stream, group, start, "+", PAGE, idle=int(self.schedule.timeout * 1000)
            )
            now_ms = int(time.time() * 1000)
            for item in pending:
                entry_id = _text(item["message_id"])
                if slots.locked():
                    return entry_id  # no post can start now: this entry comes first next time
                start = "(" + entry_id
                await self._retry_one(session, url, group, slots, item, entry_id, now_ms)
            looked += len(pending)
            if len(pending) < PAGE:
                return "-"
        return start

    async def _retry_one(
        self,
        session: aiohttp.ClientSession,
        url: str,
        group: str,
        slots: asyncio.Semaphore,
        item: dict[str, Any],
        entry_id: str,
        now_ms: int,
    ) -> None:
        if self.schedule.expired(webhooks.entry_time_ms(entry_id), now_ms):
            await self.client.xack(self.stream, group, entry_id)
            self.metrics.deliveries.labels("given_up").inc()
            log.error("webhook given up", extra={"id": entry_id, "url": url})
            return
        due = self.schedule.idle_before_retry(int(item["times_delivered"]))
        if int(item["time_since_delivered"]) < due * 1000:
            return
        claimed = await self.client.xclaim(
            self.stream, group, self.consumer, int(due * 1000), [entry_id]
        )
        if claimed:
            self.metrics.retries.inc()
            await self._post_all(session, url, group, slots, claimed)

    async def _post_all(
        self,
        session: aiohttp.ClientSession,
        url: str,
        group: str,
        slots: asyncio.Semaphore,
        entries: Sequence[Any],
    ) -> None:
        for entry_id, fields in entries:
            if fields is None:  # deleted from the stream (trimmed) meanwhile
                await self.client.xack(self.stream, group, entry_id)
                continue
            await slots.acquire()
            task = asyncio.create_task(
                self._post(session, url, group, _text(entry_id), fields), name="webhook-post"
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            task.add_done_callback(lambda _: slots.release())

    async def _post(
        self,
        session: aiohttp.ClientSession,
        url: str,
        group: str,
        entry_id: str,
        fields: dict[Any, Any],
    ) -> None:
        time_ms = int(_text(fields.get(b"time_ms", b"0")))
        raw = webhooks.body(entry_id, time_ms, fields.get(b"events", b"[]"))
        headers = {
            "Content-Type": "application/json",
            webhooks.SIGNATURE_HEADER: webhooks.signature(self.settings.secret, raw),
        }
        try:
            async with session.post(url, data=raw, headers=headers) as response:
                ok = 200 <= response.status < 300
                await response.read()
        except Exception as exc:  # unreachable, timeout, reset: retried later
            log.info("webhook post failed", extra={"id": entry_id, "error": repr(exc)})
            ok = False
        self.metrics.deliveries.labels("ok" if ok else "failed").inc()
        if ok:
            try:
                await self.client.xack(self.stream, group, entry_id)
            except Exception as exc:  # posted again later: at least once
                self.metrics.errors.inc()
                log.warning("webhook ack failed", extra={"error": repr(exc)})

    async def _housekeep(self) -> None:
        """Backlog gauge every scan; now and then, entries past the retry window trimmed
        and the consumers of edges gone for good (nothing pending, idle past the retry
        window) forgotten, so restarts do not pile up consumers."""
        trimmed = 0.0
        while True:
            try:
                backlog = 0
                groups = {group_name(url) for url in self.settings.urls}
                for info in await self.client.xinfo_groups(self.stream):
                    if _text(info["name"]) in groups:
                        backlog += int(info.get("pending") or 0) + int(info.get("lag") or 0)
                self.metrics.backlog.set(backlog)
                now = time.monotonic()
                if now - trimmed >= TRIM_SECONDS:
                    trimmed = now
                    horizon = int((time.time() - self.settings.retry_for - TRIM_SECONDS) * 1000)
                    await self.client.xtrim(self.stream, minid=max(horizon, 0), approximate=True)
                    for group in groups:
                        await self._forget_consumers(group)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # no stream yet, or Redis away
                log.debug("webhook housekeeping skipped", extra={"error": repr(exc)})
            await asyncio.sleep(SCAN_SECONDS)

    async def _forget_consumers(self, group: str) -> None:
        idle_ms = self.settings.retry_for * 1000
        for consumer in await self.client.xinfo_consumers(self.stream, group):
            name = _text(consumer["name"])
            if name != self.consumer and not consumer["pending"] and consumer["idle"] > idle_ms:
                await self.client.xgroup_delconsumer(self.stream, group, name)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
