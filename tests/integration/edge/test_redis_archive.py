"""The Redis Streams archive against a real Redis: finding an offset among time-based
ids (batches sharing a millisecond, runs of wrong-shaped entries), reading on in
order, retention, times, and the bounds on what one read brings."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from roomcast_core import wire
from roomcast_core.settings import load_settings
from roomcast_core.stream_wire import counter_key, stream_key
from roomcast_edge.adapters.redis_archive import RedisArchive
from roomcast_edge.domain.ports import ArchiveChunk, ArchiveGone, ArchiveReader, StreamArchive
from roomcast_edge.metrics import EdgeMetrics
from tests.integration.edge.conftest import message
from tests.streams import StreamPublisher


def _everything(topic: str | None, type_: str | None, room: str | None) -> bool:
    return True


class Stream:
    """One partition stream of its own, appended to as a backend would."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.key = stream_key(prefix, 0)
        self.publisher = StreamPublisher(client, prefix, partitions=1)

    async def append(self, count: int, room: str = "r", pad: str = "") -> list[int]:
        """`count` entries in one script call: they share one millisecond or a few."""
        values = [wire.encode_value(message({"pad": pad}, room=room)) for _ in range(count)]
        positions = await self.publisher.append(b"k", values)
        return [int(p.split(":")[1]) for p in positions]

    async def junk(self, count: int, fields: dict[str, str]) -> None:
        """Entries a backend wrote in the wrong shape, appended in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for _ in range(count):
            pipe.xadd(self.key, dict(fields))  # type: ignore[arg-type]
        await pipe.execute()


@pytest_asyncio.fixture
async def stream(aof_redis_url: str) -> AsyncIterator[Stream]:
    client = aioredis.Redis.from_url(aof_redis_url)
    prefix = f"roomcast.test.{uuid.uuid4().hex[:12]}"
    try:
        yield Stream(client, prefix)
    finally:
        await client.delete(stream_key(prefix, 0), counter_key(prefix, 0))
        await client.aclose()


def _archive(url: str, prefix: str, readers: int = 2) -> tuple[RedisArchive, EdgeMetrics]:
    settings = load_settings(
        {}, {"redis": {"url": url}, "bus": {"kind": "redis", "stream": prefix}}
    )
    metrics = EdgeMetrics(CollectorRegistry())
    return RedisArchive(settings, readers, metrics), metrics


@pytest_asyncio.fixture
async def archive(aof_redis_url: str, stream: Stream) -> AsyncIterator[RedisArchive]:
    found, _metrics = _archive(aof_redis_url, stream.prefix)
    port: StreamArchive = found  # mypy proves the adapter fits the port
    assert port is found
    try:
        yield found
    finally:
        await found.close()


async def _read_all(
    reader: ArchiveReader, after: int, upto: int, chunk: int
) -> tuple[list[int], list[ArchiveChunk]]:
    offsets: list[int] = []
    chunks: list[ArchiveChunk] = []
    while after < upto:
        got = await reader.read(0, after, upto, chunk, _everything)
        assert got.last > after, "a read made no progress"
        offsets += [p.offset for p in got.publications]
        chunks.append(got)
        after = got.last
    return offsets, chunks


async def test_any_offset_is_found_among_batches_sharing_a_millisecond(
    stream: Stream, archive: RedisArchive
) -> None:
    offsets: list[int] = []
    for size in (700, 1, 300, 2, 900):
        offsets += await stream.append(size)
        await asyncio.sleep(0.003)  # the next batch in another millisecond
    assert offsets == list(range(len(offsets)))
    end = offsets[-1]
    async with archive.reader("history") as reader:
        # Every boundary, and a spread of offsets inside the batches.
        for after in [
            -1,
            0,
            1,
            698,
            699,
            700,
            701,
            1000,
            1001,
            1002,
            1500,
            end - 1,
            *range(3, end, 97),
        ]:
            got = await reader.read(0, after, end, 5, _everything)
            assert [p.offset for p in got.publications] == list(range(after + 1, after + 6))[
                : end - after
            ], after
            assert got.last == min(after + 5, end)
    # Read through in chunks: the same offsets, each once, in order, with the ids'
    # time as the record time.
    async with archive.reader("history") as reader:
        read, chunks = await _read_all(reader, -1, end, 128)
    assert read == offsets
    stamps = [p.timestamp for c in chunks for p in c.publications]
    assert stamps == sorted(stamps)
    assert abs(stamps[-1] - time.time()) < 60
    assert await reader.read(0, end, end, 10, _everything) == ArchiveChunk([], end)


async def test_wrong_shaped_entries_are_stepped_over(stream: Stream, archive: RedisArchive) -> None:
    await stream.append(10)  # 0..9
    await stream.junk(40, {"key": "k", "value": "{}"})  # no offset: a run longer than a probe
    await stream.append(10)  # 10..19
    await stream.junk(3, {"offset": "twelve", "key": "k", "value": "{}"})
    await stream.append(5)  # 20..24
    # An offset but a value that is not a roomcast message: read, not delivered.
    await stream.publisher.append(b"k", [b"not json"])  # 25
    await stream.append(5)  # 26..30
    async with archive.reader("recovery") as reader:
        for after in (-1, 5, 9, 10, 15, 19, 20, 24, 25):
            got = await reader.read(0, after, 30, 3, _everything)
            # Records count toward the 3 asked for whether they make a push or not.
            last = min(after + 3, 30)
            expected = [o for o in range(after + 1, last + 1) if o != 25]
            assert [p.offset for p in got.publications] == expected, after
            assert got.last == last
        read, chunks = await _read_all(reader, -1, 30, 4)
    assert read == [o for o in range(31) if o != 25]
    # The chunk that held 25 ends at or past it though it brought no push for it.
    assert any(c.last >= 25 and 25 not in [p.offset for p in c.publications] for c in chunks)
    assert await archive.log_start([0]) == {0: 0}


async def test_wanted_records_only_are_built(stream: Stream, archive: RedisArchive) -> None:
    await stream.append(20, room="a")
    await stream.append(20, room="b")

    def room_b(topic: str | None, type_: str | None, room: str | None) -> bool:
        return room == "b"

    async with archive.reader("history") as reader:
        got = await reader.read(0, -1, 39, 100, room_b)
    assert [p.offset for p in got.publications] == list(range(20, 40))
    assert got.last == 39


async def test_trimmed_entries_are_gone_and_the_log_start_moves(
    stream: Stream, archive: RedisArchive
) -> None:
    await stream.append(100)
    await asyncio.sleep(0.003)
    await stream.append(100)  # 100..199
    # Retention drops the first batch (MINID at the second batch's first id).
    first_kept: Any = await stream.client.xrange(stream.key, "-", "+", count=101)
    await stream.client.xtrim(stream.key, minid=first_kept[100][0], approximate=False)
    assert await archive.log_start([0]) == {0: 100}
    assert archive.known_log_start() == {0: 100}
    async with archive.reader("recovery") as reader:
        with pytest.raises(ArchiveGone) as gone:
            await reader.read(0, 50, 199, 10, _everything)
        assert (gone.value.partition, gone.value.first) == (0, 100)
        got = await reader.read(0, 99, 199, 10, _everything)
        assert [p.offset for p in got.publications] == list(range(100, 110))
        # Trimmed under a sequential reader: gone too, not a silent jump.
        await stream.client.xtrim(stream.key, maxlen=50, approximate=False)
        with pytest.raises(ArchiveGone) as gone:
            await reader.read(0, got.last, 199, 10, _everything)
        assert gone.value.first == 150
    # Everything trimmed: the log starts at the next offset to be appended.
    await stream.client.xtrim(stream.key, maxlen=0, approximate=False)
    assert await archive.log_start([0]) == {0: 200}
    assert await archive.offsets_at(0, [0]) == {0: 200}


async def test_offsets_at_a_time(stream: Stream, archive: RedisArchive) -> None:
    assert await archive.log_start([0]) == {0: 0}  # nothing appended yet
    await stream.append(50)
    await asyncio.sleep(0.01)
    middle_ms = int(time.time() * 1000)
    await asyncio.sleep(0.01)
    await stream.append(50)  # 50..99
    assert await archive.offsets_at(0, [0]) == {0: 0}
    assert await archive.offsets_at(middle_ms, [0]) == {0: 50}
    future = int(time.time() * 1000) + 60_000
    assert await archive.offsets_at(future, [0]) == {0: 100}


async def test_one_read_brings_a_bounded_number_of_bytes(
    stream: Stream, archive: RedisArchive
) -> None:
    await stream.append(40, pad="x" * 10_000)
    async with archive.reader("history") as reader:
        small = await reader.read(0, -1, 39, 100, _everything)
        # About 64 KB of entries, not the 100 asked for; the next read goes on.
        assert 1 <= len(small.publications) <= 8
        rest, _ = await _read_all(reader, small.last, 39, 100)
    assert [p.offset for p in small.publications] + rest == list(range(40))


async def test_readers_are_lent_a_few_at_a_time(aof_redis_url: str, stream: Stream) -> None:
    archive, metrics = _archive(aof_redis_url, stream.prefix, readers=1)
    entered = asyncio.Event()
    release = asyncio.Event()
    order: list[str] = []

    async def hold(name: str, wait: Sequence[asyncio.Event]) -> None:
        async with archive.reader(name):
            order.append(name)
            entered.set()
            for event in wait:
                await event.wait()

    try:
        first = asyncio.create_task(hold("first", [release]))
        await entered.wait()
        second = asyncio.create_task(hold("second", []))
        await asyncio.sleep(0.05)
        gauges = {s.name: s.value for m in metrics.archive_waiting.collect() for s in m.samples}
        assert order == ["first"]
        assert gauges == {"roomcast_edge_archive_waiting": 1.0}
        release.set()
        await asyncio.gather(first, second)
        assert order == ["first", "second"]
    finally:
        await archive.close()
