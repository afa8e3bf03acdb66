"""Write coalescing: frames queue per connection and go out once per loop turn.

The fan-out is the one owner of every connection's outbound state (`pending`,
`pending_bytes`, `replay`): nothing else queues, writes data frames or clears them.

Delivering a push appends the shared frame bytes to each recipient's pending list;
one callback per event-loop turn joins each connection's frames and hands them to
its transport with a single write. Nothing awaits and nothing is created per
message per connection. A connection that does not take the shared frame as is
(`recode`: permessage-deflate, or an SSE stream) makes its own bytes from it; the
plain path costs one flag. A connection whose unsent bytes (kernel-side transport
buffer plus pending) would pass the limit is handed to `on_slow` and dropped,
without delaying anyone else. The limit applies to what the transport still holds
(beyond the kernel's socket buffer) plus what is about to be written.

Replays are paced by the socket instead: a chunk is read from the history when the
connection's transport is not paused (asyncio's flow control), one chunk per
connection per loop turn, so a replay of any size neither fills memory nor counts
as slowness while the client reads. While a connection replays, its live pushes
are not queued: its replay follows the stream and sends them in order (see
domain.replay), which is what keeps the seam exact. A replay that the history
overtakes (it let go of what the replay had still to send) is slow: `on_slow`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from roomcast_edge.domain.hub import Subscription
from roomcast_edge.domain.replay import Replay, ReplayBehind, ReplayJob
from roomcast_edge.domain.replay_index import ReplayIndex
from roomcast_edge.transport.connection import Connection

# Pending bytes at which a connection is written at once instead of at the end of
# the turn: big bursts still go out in large writes, and memory stays bounded.
WRITE_AT = 64 * 1024
# A replay's chunk: read from the history and written in one go when the socket can
# take it, and the most publications examined for it (matching or not).
REPLAY_CHUNK = 64 * 1024
REPLAY_SCAN = 4096
# While a connection replays, its transport may hold a chunk beyond the high-water
# mark: the outbound limit for its replies counts from there.
REPLAY_ALLOWANCE = 4 * REPLAY_CHUNK


class Fanout:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        max_outbound_bytes: int,
        on_slow: Callable[[Connection], None],
        index: ReplayIndex,
        max_replay_jobs: int = 256,
    ) -> None:
        """`max_replay_jobs`: replay jobs one connection may have waiting (each request
        with `since` adds one): a client that asks for more than it reads is slow."""
        self._loop = loop
        self._max_replay_jobs = max_replay_jobs
        self._limit = max_outbound_bytes
        self._on_slow = on_slow
        self._index = index
        self._dirty: list[Connection] = []
        # Connections with a replay running, in the order their replays began.
        self._replaying: dict[Connection, None] = {}
        self._scheduled = False

    def attach(self, conn: Connection) -> None:
        """Give a new connection its (empty) outbound state, before anything is sent."""
        conn.pending = []
        conn.pending_bytes = 0
        conn.replay = None
        conn.outbound = self

    def discard(self, conn: Connection) -> None:
        """Drop what was not written yet (the connection is going away)."""
        conn.pending = []
        conn.pending_bytes = 0
        if conn.replay is not None:
            conn.replay = None
            self._replaying.pop(conn, None)

    # ---- replays ----------------------------------------------------------

    @staticmethod
    def replaying(conn: Connection) -> bool:
        return conn.replay is not None

    def replay(self, conn: Connection, jobs: list[ReplayJob]) -> None:
        """Send these jobs' publications after anything queued or replaying already."""
        if conn.closed or not jobs:
            return
        if conn.replay is None:
            conn.replay = Replay(list(jobs))
            self._replaying[conn] = None
        else:
            conn.replay.extend(jobs)
            if len(conn.replay.jobs) > self._max_replay_jobs:
                self._on_slow(conn)
                return
        self._schedule()

    @staticmethod
    def pin(conn: Connection, positions: dict[int, int]) -> None:
        """The session's selection changed: its replay stops following the stream here."""
        if conn.replay is not None:
            conn.replay.pin(positions)

    @staticmethod
    def narrow(conn: Connection, rooms: frozenset[str], subs: frozenset[Subscription]) -> None:
        """The session holds only these now: its replay sends nothing of the others."""
        if conn.replay is not None:
            conn.replay.narrow(rooms, subs)

    def drop_overtaken(self) -> None:
        """Replays the history has overtaken, their clients reading or not, are slow."""
        index = self._index
        behind = [c for c in self._replaying if c.replay is not None and c.replay.behind(index)]
        for conn in behind:
            self._on_slow(conn)

    def give_up(self, conn: Connection) -> None:
        """Its replay cannot be sent exactly (or at all): the client is closed as slow,
        whether or not its socket is paused, and starts again with its `since`."""
        if not conn.closed:
            self._on_slow(conn)

    def writable(self, conn: Connection) -> None:
        """A paused transport drained below its low-water mark."""
        if conn.replay is not None:
            self._schedule()

    def send(self, conn: Connection, frame: bytes) -> None:
        """Queue one frame (a reply, a replayed push) for this turn's flush."""
        if conn.closed:
            return
        if not conn.pending:
            self._dirty.append(conn)
        conn.pending.append(frame)
        conn.pending_bytes += len(frame)
        self._schedule()

    def deliver(
        self, conns: Iterable[Connection], frame: bytes, partition: int, offset: int
    ) -> int:
        """Queue a push to every recipient; returns how many got it."""
        limit = self._limit
        dirty = self._dirty
        slow: list[Connection] | None = None
        shared: dict[int, bytes] | None = None
        count = 0
        for conn in conns:
            if (
                conn.closed
                or conn.replay is not None  # its replay follows the stream: sent from there
                or (conn.skip is not None and conn.already_has(partition, offset))
            ):
                continue
            data = frame
            if conn.recode:
                # Compressed (once per message and window size) or another transport's
                # encoding: the connection makes it, the plain path checks one flag.
                if shared is None:
                    shared = {}
                data = conn.encode_push(frame, partition, offset, shared)
            pending = conn.pending
            if not pending:
                dirty.append(conn)
            pending.append(data)
            conn.pending_bytes += len(data)
            count += 1
            if conn.pending_bytes >= WRITE_AT and not self._write(conn, limit):
                if slow is None:
                    slow = []
                slow.append(conn)
        if count:
            self._schedule()
        if slow is not None:
            # After the loop: closing changes the hub sets being iterated.
            for conn in slow:
                self._on_slow(conn)
        return count

    def flush_now(self, conn: Connection, first: bytes = b"") -> None:
        """Write what is pending for one connection (before a close frame), after
        `first` (the handshake's 101, which must precede every frame), in one write."""
        if conn.pending or first:
            data = b"".join((first, *conn.pending))
            conn.pending = []
            conn.pending_bytes = 0
            if not conn.transport.is_closing():
                conn.transport.write(data)

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, []
        limit = self._limit
        slow: list[Connection] = []
        for conn in dirty:
            if not conn.closed and conn.pending and not self._write(conn, limit):
                slow.append(conn)
        if self._replaying:
            self._pump(slow)
        for conn in slow:
            self._on_slow(conn)

    def _pump(self, slow: list[Connection]) -> None:
        """One chunk for each replaying connection whose socket can take it."""
        more = False
        for conn in list(self._replaying):
            replay = conn.replay
            if replay is None or conn.closed:
                self._replaying.pop(conn, None)
                continue
            transport = conn.transport
            if conn.paused or transport.is_closing():
                continue  # `writable` (or the connection's end) comes next
            try:
                data, done = replay.next_chunk(self._index, REPLAY_CHUNK, REPLAY_SCAN)
            except ReplayBehind:
                slow.append(conn)
                continue
            if data:
                if conn.recode:
                    data = conn.encode_replayed(data)
                transport.write(data)  # may pause the connection at once
            if done:
                conn.replay = None
                del self._replaying[conn]
            elif not conn.paused and not replay.waiting:
                more = True
        if more:
            self._schedule()

    @staticmethod
    def _write(conn: Connection, limit: int) -> bool:
        """Hand the pending frames to the transport in one write; False: too slow."""
        pending = conn.pending
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        conn.pending = []
        conn.pending_bytes = 0
        transport = conn.transport
        if transport.is_closing():
            return True
        if conn.replay is not None:
            limit += REPLAY_ALLOWANCE
        if transport.get_write_buffer_size() + len(data) > limit:
            return False
        transport.write(data)
        return True
