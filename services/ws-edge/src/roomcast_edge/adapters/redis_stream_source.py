"""The stream on Redis Streams: every partition stream, read by this edge alone.

The same flow as the Kafka source (see kafka_source): at start each stream is read
from its first entry younger than `history_age` (the history's count and byte
bounds evict the rest), filling the recovery history without pushing, and the edge
goes live once every stream is read up to the last entry seen at start. Then one
XREAD BLOCK waits on all streams at once.

Redis going away is ridden out: the source keeps the id of the last entry read
and carries on after it once Redis answers again, so with AOF nothing is lost or
read twice. A stream whose offsets went backwards (Redis came back without its
data, or the streams were deleted) has its history reset, as on Kafka. Offsets
are dense, so entries trimmed before this edge read them (it fell more than
MAX_LEN behind) show as a jump: the sink is told (`gap`) before anything after it.
An entry in the wrong shape (no whole `offset`, a value that is not a roomcast
message) is counted, logged at most every few seconds, and skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from opentelemetry import propagate
from redis.exceptions import RedisError

from roomcast_core.redis_link import redis_client
from roomcast_core.settings import BusSettings, Settings
from roomcast_core.stream_wire import EntryError, decode_entry, parse_id, stream_key
from roomcast_core.wire import WireError, decode_value, parse_time
from roomcast_edge.adapters.ingest import UndecodableLog, publish_traced, trace_id_of
from roomcast_edge.adapters.redis_streams import before_time, first_offset
from roomcast_edge.domain.ports import PublicationSink
from roomcast_edge.domain.publication import make_publication
from roomcast_edge.metrics import EdgeMetrics

log = logging.getLogger(__name__)

BATCH_ENTRIES = 1000
BLOCK_MS = 1000
RETRY_SECONDS = 1.0


class RedisStreamSource:
    def __init__(
        self,
        client: aioredis.Redis,
        settings: BusSettings,
        sink: PublicationSink,
        metrics: EdgeMetrics,
        trace_id_in_meta: bool = False,
        history_age: float | None = None,
    ) -> None:
        self._client = client
        self._settings = settings
        self._sink = sink
        self._metrics = metrics
        self._trace_id_in_meta = trace_id_in_meta
        self._history_age = history_age
        self._keys = {stream_key(settings.stream, p): p for p in range(settings.partitions)}
        # Per stream: the id to read after, the last offset read, and the last id at start.
        self._after: dict[str, bytes] = {}
        self._last: dict[int, int] = {}
        self._targets: dict[str, tuple[int, int]] = {}
        self.assigned = False
        self.caught_up = False
        self._undecodable = UndecodableLog(metrics, "stream entries")

    @classmethod
    def from_settings(
        cls, settings: Settings, sink: PublicationSink, metrics: EdgeMetrics
    ) -> RedisStreamSource:
        """A source with a Redis client of its own (its blocking reads hold a connection)."""
        timeout = settings.redis.timeout
        client = redis_client(
            settings.redis,
            # A blocking read waits BLOCK_MS for entries; the socket must wait longer.
            socket_timeout=timeout + BLOCK_MS / 1000,
            socket_connect_timeout=timeout,
        )
        return cls(
            client,
            settings.bus,
            sink,
            metrics,
            trace_id_in_meta=settings.edge.trace_id_in_meta,
            history_age=settings.edge.history_age,
        )

    async def run_and_close(self) -> None:
        try:
            await self.run()
        finally:
            await self._client.aclose()

    # ---- readiness ---------------------------------------------------------

    async def readiness(self) -> str | None:
        if not self.assigned:
            return "streams not read yet"
        if not self.caught_up:
            return "catching up with the stream"
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            return f"redis unreachable: {exc}"
        return None

    # ---- running -----------------------------------------------------------

    async def run(self) -> None:
        """Read until cancelled; carry on where it was whenever Redis fails."""
        while True:
            try:
                if not self.assigned:
                    await self._start()
                await self._read_forever()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("redis stream source failed, retrying", extra={"error": repr(exc)})
                await asyncio.sleep(RETRY_SECONDS)

    async def _start(self) -> None:
        """Where each stream is read from, and how far the history fill goes."""
        after = "0-0"
        if self._history_age is not None:
            young_ms = int((time.time() - self._history_age) * 1000)
            after = before_time(max(young_ms, 1))
        starts: dict[str, tuple[bytes, int, tuple[int, int]]] = {}
        for key, partition in self._keys.items():
            last: Any = await self._client.xrevrange(key, count=1)
            target = parse_id(last[0][0]) if last else (0, 0)
            first = await first_offset(self._client, self._settings.stream, partition, after)
            starts[key] = (after.encode(), first, target)
        # Synchronous from here: nothing is read before every stream has its start.
        for key, (start, first, target) in starts.items():
            partition = self._keys[key]
            self._sink.start_partition(partition, first)
            self._last[partition] = first - 1
            self._after[key] = start
            self._targets[key] = target
        self.assigned = True
        log.info(
            "reading the streams",
            extra={"streams": sorted(self._keys), "end": {k: v for k, v in self._targets.items()}},
        )
        self._check_caught_up()

    async def _read_forever(self) -> None:
        while True:
            streams: Any = dict(self._after)
            replies: Any = await self._client.xread(streams, count=BATCH_ENTRIES, block=BLOCK_MS)
            for raw_key, entries in replies or ():
                key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
                self._handle(key, entries)
            if not self.caught_up:
                self._check_caught_up()

    def _check_caught_up(self) -> None:
        if all(parse_id(self._after[k]) >= t for k, t in self._targets.items()):
            self.caught_up = True
            self._sink.go_live()
            log.info("caught up with the streams, live")

    def _handle(self, key: str, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        partition = self._keys[key]
        target = self._targets[key]
        sink = self._sink
        self._metrics.bus_records.inc(len(entries))
        for entry_id, fields in entries:
            self._after[key] = entry_id
            try:
                entry = decode_entry(entry_id, fields)
            except EntryError as exc:
                self._undecodable.skipped(partition, None, exc)
                continue
            offset = entry.offset
            last = self._last.get(partition, -1)
            if offset <= last:
                # Ids only grow, so a smaller offset after a later id is a counter that
                # started over: the stream's offsets now name other records.
                self._reset(partition, offset)
            elif offset > last + 1:
                # Offsets are dense (one counter per stream), so a jump is entries
                # trimmed (MAXLEN/MINID) while this edge was behind: never read.
                self._gap(partition, last + 1, offset)
            self._last[partition] = offset
            try:
                message = decode_value(entry.value)
                try:
                    receive_epoch: float | None = parse_time(message.receive_time)
                except WireError:
                    receive_epoch = None
                live = parse_id(entry_id) > target
                traced = live and entry.traceparent is not None
                trace_id = None
                if traced and self._trace_id_in_meta and entry.traceparent is not None:
                    trace_id = trace_id_of(entry.traceparent)
                publication = make_publication(
                    message, partition, offset, entry.timestamp, trace_id
                )
            except WireError as exc:
                sink.skip(partition, offset)
                self._undecodable.skipped(partition, offset, exc)
                continue
            if not traced:
                sink.publish(publication, receive_epoch, live)
                continue
            carrier = {"traceparent": (entry.traceparent or b"").decode("latin-1")}
            if entry.tracestate is not None:
                carrier["tracestate"] = entry.tracestate.decode("latin-1")
            publish_traced(
                sink,
                publication,
                receive_epoch,
                message,
                propagate.extract(carrier),
                {"messaging.system": "redis", "messaging.destination.name": key},
            )

    def _gap(self, partition: int, missing: int, first: int) -> None:
        log.warning(
            "entries trimmed before they were read: history of the partition restarts",
            extra={
                "stream": stream_key(self._settings.stream, partition),
                "missing_from": missing,
                "reading_from": first,
            },
        )
        self._metrics.stream_gaps.inc()
        self._sink.gap(partition, first)

    def _reset(self, partition: int, first: int) -> None:
        log.warning(
            "offsets went backwards: history of the partition reset",
            extra={
                "stream": stream_key(self._settings.stream, partition),
                "last_read": self._last.get(partition),
                "reading_from": first,
            },
        )
        self._sink.reset_partition(partition, first)
        self._last[partition] = first - 1
