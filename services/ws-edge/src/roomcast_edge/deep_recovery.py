"""Deep recoveries: the bus part of replays older than the in-memory history.

One task per such replay borrows a reader of the bus's log (at most ARCHIVE_READERS
at once per edge; the others wait for one, see adapters.archive_reading) and feeds
its `DeepJob` chunk by chunk. It reads ahead only a bounded buffer: the next chunk
is read once the client's socket has taken the last, so a slow client holds a
reader, not memory, and the live stream never waits on any of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from roomcast_edge.domain.deep_replay import DeepJob
from roomcast_edge.domain.ports import ArchiveGone, StreamArchive
from roomcast_edge.transport.connection import Connection
from roomcast_edge.transport.fanout import Fanout

log = logging.getLogger(__name__)

# Bytes of matching frames read ahead of the client's socket, per recovery.
READ_AHEAD = 256 * 1024
# Records per read: decoding them is a step of the event loop, kept short.
CHUNK_RECORDS = 100
# How often an idle recovery looks whether its client went away.
IDLE_CHECK = 1.0
# Seconds between two looks at where the bus's log starts (retention moves it).
LOG_START_EVERY = 10.0


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
        task = asyncio.get_running_loop().create_task(self._run(conn, job), name="deep-recovery")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, conn: Connection, job: DeepJob) -> None:
        wake = asyncio.Event()
        job.on_drained = wake.set
        try:
            async with self._archive.reader("recovery") as reader:
                while not conn.closed and not job.handed and not job.failed:
                    todo = job.pending()
                    if todo is None or job.buffered >= READ_AHEAD:
                        wake.clear()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(wake.wait(), IDLE_CHECK)
                        continue
                    partition, after, upto = todo
                    chunk = await reader.read(partition, after, upto, CHUNK_RECORDS, job.wants)
                    if chunk.last == after:
                        raise OSError(f"no records came from partition {partition}")
                    job.feed(partition, chunk.publications, chunk.last)
                    self._fanout.writable(conn)
        except asyncio.CancelledError:
            raise
        except ArchiveGone as gone:
            log.info("deep recovery overtaken by retention", extra={"error": str(gone)})
            job.fail()
        except Exception as exc:
            log.warning("deep recovery failed", extra={"error": repr(exc)})
            job.fail()
        finally:
            job.on_drained = None
        if job.failed:
            self._fanout.writable(conn)  # the replay ends: the client is closed to retry

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
