"""Deep recoveries: the bus part of replays older than the in-memory history.

One task per such replay feeds its `DeepJob` chunk by chunk from a reader of the
bus's log, borrowed (see adapters.archive_reading) only while there is room in a
bounded read-ahead buffer, and at most HOLD seconds at a time: a client that does
not drain its socket holds no reader, and one that does shares them in turns. A
client that takes nothing for STALL seconds, or a replay that waits READER_WAIT
for a reader, is given up (4008): its next `since` starts it again.

A rewind the history cannot fill first searches the bus's log backwards from where
the history starts, in growing windows read forward, for the latest matching
records (at most REWIND_SEARCH records examined), then starts there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from roomcast_edge.domain.deep_replay import DeepJob, Found
from roomcast_edge.domain.ports import ArchiveGone, ArchiveReader, StreamArchive
from roomcast_edge.transport.connection import Connection
from roomcast_edge.transport.fanout import Fanout

log = logging.getLogger(__name__)

# Bytes of matching frames read ahead of the client's socket, per recovery.
READ_AHEAD = 256 * 1024
# Records per read: decoding them is a step of the event loop, kept short.
CHUNK_RECORDS = 100
# How often an idle recovery looks whether its client went away or stalled.
IDLE_CHECK = 1.0
# Seconds between two looks at where the bus's log starts (retention moves it).
LOG_START_EVERY = 10.0
# Seconds a recovery keeps a reader before it queues again behind the others.
HOLD = 0.5
# A client with frames waiting that takes none of them for this long does not read.
STALL = 15.0
# Seconds a recovery waits for a reader before it gives up.
READER_WAIT = 30.0
# Records of the bus's log a rewind examines at most, looking for its messages.
REWIND_SEARCH = 20_000


class _GiveUp(Exception):
    """The recovery cannot go on: its client is closed to start it again."""


class DeepRecoveries:
    def __init__(self, archive: StreamArchive, fanout: Fanout) -> None:
        self._archive = archive
        self._fanout = fanout
        self._tasks: set[asyncio.Task[None]] = set()

    async def watch_log_start(self, partitions: Callable[[], list[int]]) -> None:
        """Keep where the log starts known, for `since` on subscribe/join, which cannot
        wait to ask: retention moves it on, so it is asked again every LOG_START_EVERY."""
        while True:
            try:
                await asyncio.wait_for(self._archive.log_start(partitions()), LOG_START_EVERY)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("log start check failed, retried", extra={"error": repr(exc)})
            await asyncio.sleep(LOG_START_EVERY)

    def start(self, conn: Connection, job: DeepJob) -> None:
        task = asyncio.get_running_loop().create_task(
            self._run(conn, job, conn.claims.jti), name="deep-recovery"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, conn: Connection, job: DeepJob, owner: str) -> None:
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        drained_at = loop.time()

        def drained() -> None:
            nonlocal drained_at
            drained_at = loop.time()
            wake.set()

        job.on_drained = drained
        try:
            while not conn.closed and not job.handed and not job.failed:
                if job.rewinding:
                    await self._search(conn, job, owner)
                    self._fanout.writable(conn)
                    continue
                if job.pending() is None or job.buffered >= READ_AHEAD:
                    if job.buffered and loop.time() - drained_at > STALL:
                        if _queued_behind(conn, job):
                            drained_at = loop.time()  # earlier replays go first
                        else:
                            raise _GiveUp("the client does not read")
                    wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), IDLE_CHECK)
                    continue
                await self._take_turn(conn, job, owner)
        except asyncio.CancelledError:
            raise
        except _GiveUp as exc:
            log.info("deep recovery given up", extra={"error": str(exc)})
            job.fail()
        except ArchiveGone as gone:
            log.info("deep recovery overtaken by retention", extra={"error": str(gone)})
            job.fail()
        except Exception as exc:
            log.warning("deep recovery failed", extra={"error": repr(exc)})
            job.fail()
        finally:
            job.on_drained = None
        if job.failed:
            self._fanout.give_up(conn)  # the replay cannot be exact: the client retries

    async def _borrow(self, stack: contextlib.AsyncExitStack, owner: str) -> ArchiveReader:
        try:
            async with asyncio.timeout(READER_WAIT):
                return await stack.enter_async_context(self._archive.reader("recovery", owner))
        except TimeoutError:
            raise _GiveUp("no reader of the bus came free in time") from None

    async def _take_turn(self, conn: Connection, job: DeepJob, owner: str) -> None:
        """Read with a borrowed reader until the buffer is full, the bus part is done
        or HOLD has passed; then give the reader back."""
        loop = asyncio.get_running_loop()
        async with contextlib.AsyncExitStack() as stack:
            reader = await self._borrow(stack, owner)
            until = loop.time() + HOLD
            while not conn.closed and not job.failed and job.buffered < READ_AHEAD:
                todo = job.pending()
                if todo is None:
                    return
                partition, after, upto = todo
                chunk = await reader.read(partition, after, upto, CHUNK_RECORDS, job.wants)
                if chunk.last == after:
                    raise OSError(f"no records came from partition {partition}")
                job.feed(partition, chunk.publications, chunk.last)
                self._fanout.writable(conn)
                if loop.time() >= until:
                    return

    async def _search(self, conn: Connection, job: DeepJob, owner: str) -> None:
        """A rewind's latest matching records before the history, then `begin`."""
        n = job.rewinding
        searched = job.bounds()  # per partition, searched down from here
        older: dict[int, list[Found]] = {}
        budget = REWIND_SEARCH
        async with contextlib.AsyncExitStack() as stack:
            reader = await self._borrow(stack, owner)
            for partition, top in sorted(searched.items()):
                found: list[Found] = []
                floor, hi, window = -1, top, CHUNK_RECORDS
                while hi > floor and len(found) < n and budget > 0 and not conn.closed:
                    lo = max(floor, hi - window)
                    try:
                        found[:0] = await _scan(reader, job, partition, lo, hi)
                    except ArchiveGone as gone:
                        floor = gone.first - 1  # retention: the log starts there
                        continue
                    budget -= hi - lo
                    hi, window = lo, window * 4
                older[partition] = found[-n:]
            # The history may have let go of more meanwhile: what lies between too.
            while moved := {p: t for p, t in job.bounds().items() if t > searched.get(p, -1)}:
                for partition, top in moved.items():
                    found = older.get(partition, [])
                    after = searched.get(partition, -1)
                    found.extend(await _scan(reader, job, partition, after, top))
                    older[partition] = found[-n:]
                    searched[partition] = top
        job.begin(older)  # no await since the last look at the history: exact

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _scan(
    reader: ArchiveReader, job: DeepJob, partition: int, after: int, upto: int
) -> list[Found]:
    """The records of (after, upto] of the partition that the job matches."""
    found: list[Found] = []
    while after < upto:
        chunk = await reader.read(partition, after, upto, CHUNK_RECORDS, job.wants)
        if chunk.last == after:
            raise OSError(f"no records came from partition {partition}")
        found.extend((p.timestamp, p.offset) for p in chunk.publications if job.matches(p))
        after = chunk.last
    return found


def _queued_behind(conn: Connection, job: DeepJob) -> bool:
    """Whether other replay jobs of the connection are sent before this one."""
    replay = conn.replay
    return replay is not None and bool(replay.jobs) and replay.jobs[0] is not job
