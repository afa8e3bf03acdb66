"""The edge node: wires the stream, the domain and the transport together.

It is the stream's sink (history, then fan-out of live messages), keeps the open
connections by id and by token, passes connects and requests to the domain's
dispatcher and the answers to the fan-out, and closes connections from the server
side. Everything here runs synchronously on the event loop: the dispatcher's
history read and hub change happen in one step, so recovery is exact.
"""

from __future__ import annotations

import asyncio
import time

from roomcast_core.edge_link import new_edge_id
from roomcast_core.settings import EdgeSettings
from roomcast_core.tokens import RevocationChecker
from roomcast_edge.deep_recovery import DeepRecoveries
from roomcast_edge.domain import lifetime, protocol
from roomcast_edge.domain.deep_replay import DeepJob
from roomcast_edge.domain.dispatch import ConnectRequest, Dispatcher, Limits, Renewal
from roomcast_edge.domain.frames import pong_frame
from roomcast_edge.domain.held_tokens import HeldTokens
from roomcast_edge.domain.history import History
from roomcast_edge.domain.hub import Hub
from roomcast_edge.domain.presence import PresenceQuery, RoomPresence
from roomcast_edge.domain.publication import Publication
from roomcast_edge.domain.replay import ReplayJob
from roomcast_edge.metrics import EdgeMetrics
from roomcast_edge.renewals import Renewals
from roomcast_edge.transport.connection import Connection
from roomcast_edge.transport.fanout import Fanout
from roomcast_edge.transport.sse import SseConnection

# Seconds the server waits for the client's answer to its close frame.
CLOSE_TIMEOUT = 5.0
# After that, how long a client that stopped reading keeps its socket.
ABORT_AFTER_CLOSE = 5.0

# Seconds a session remembers offsets of partitions this edge does not read: new
# partitions are picked up well within this.
UNKNOWN_PARTITION_GRACE = 120.0

CLOSE_HEARTBEAT = (4000, "heartbeat timeout")
CLOSE_EXPIRED = (4001, "token expired")
CLOSE_SLOW = (4008, "slow consumer")
CLOSE_REVOKED = (1008, "token revoked")
CLOSE_ABUSE = (1008, "rate limit exceeded")
CLOSE_RESTART = (1012, "service restart")
# The edge lost records it never read (see `gap`): reconnect, with `since`, anywhere.
CLOSE_GAP = CLOSE_RESTART
CLOSE_OPERATOR = (4003, "closed by operator")

__all__ = ["ConnectRequest", "Node"]


class Node:
    def __init__(
        self,
        settings: EdgeSettings,
        metrics: EdgeMetrics,
        loop: asyncio.AbstractEventLoop,
        *,
        verifier: lifetime.TokenCheck | None = None,
        revocations: RevocationChecker | None = None,
        leeway: float = 0.0,
        presence: RoomPresence | None = None,
        edge_id: str | None = None,
    ) -> None:
        self.settings = settings
        # This edge's identity in the deployment: in its connections' ids, its presence
        # and what it reports (see roomcast_core.edge_link).
        self.edge_id = edge_id or new_edge_id()
        # Told every connection's rooms after each change; None: presence is off.
        self.presence = presence
        self.metrics = metrics
        self.loop = loop
        self.hub: Hub[Connection] = Hub()
        self.history = History(settings.history_size, settings.history_age, settings.history_bytes)
        self.dispatcher = Dispatcher(
            self.hub,
            self.history,
            Limits(settings.max_rooms, settings.max_subscriptions, settings.max_replay),
            tokens=verifier,
        )
        self.index = self.dispatcher.index
        # Enough for a client that adds every room and subscription it may hold with
        # a `since` while its connect replay runs.
        jobs = 2 * (settings.max_subscriptions + settings.max_rooms) + 8
        self.fanout = Fanout(loop, settings.max_outbound_bytes, self._slow, self.index, jobs)
        self.connections: dict[str, Connection] = {}
        # The SSE connections among them (pinged on a timer, counted apart).
        self.sse_connections: set[Connection] = set()
        # Slots held by handshakes in progress (between the limit check and `open`).
        self._reserved = 0
        # Who holds which token (revocations) and when it ends (exp + leeway + grace).
        self.tokens: HeldTokens[Connection] = HeldTokens(leeway + settings.refresh_grace)
        self._renewals = Renewals(loop, revocations, self._apply_renewal, self._refuse_renewal)
        # Sessions skipping offsets of partitions not read here, with their deadline.
        self._unknown: dict[Connection, float] = {}
        # Connections whose close frame is out and whose socket is not closed yet.
        self._closing: set[Connection] = set()
        self.caught_up = False
        self.draining = False
        # The stream's metrics of a loop turn, applied once at its end.
        self._tally = metrics.ingest
        self._tally_scheduled = False
        # Reads the bus's log for replays older than the history (set by the app).
        self.deep: DeepRecoveries | None = None
        metrics.connections.set_function(lambda: len(self.connections))
        by_transport = metrics.transport_connections
        by_transport.labels("sse").set_function(lambda: len(self.sse_connections))
        by_transport.labels("websocket").set_function(
            lambda: len(self.connections) - len(self.sse_connections)
        )
        metrics.subscriptions.set_function(lambda: self.hub.subscription_count)
        metrics.history_bytes.set_function(lambda: self.history.bytes)
        metrics.history_messages.set_function(lambda: len(self.history))

    # ---- the stream (PublicationSink) ---------------------------------------

    def start_partition(self, partition: int, first_offset: int) -> None:
        self.history.start(partition, first_offset)
        self.index.forget_partition(partition)

    def reset_partition(self, partition: int, first_offset: int) -> None:
        self.history.reset(partition, first_offset)
        self.index.forget_partition(partition)
        # A skip entry names an offset of the old log: it says nothing of the new one.
        for conn in self.connections.values():
            skip = conn.skip
            if skip is not None and skip.pop(partition, None) is not None and not skip:
                conn.skip = None

    def gap(self, partition: int, first_offset: int) -> None:
        """Records of `partition` before `first_offset` were trimmed from the bus before
        this edge read them (it fell that far behind).

        The history starts again at `first_offset`, so a vector inside the hole is
        answered `recovered: false`. Every open connection may have missed some of
        those records and would carry on past them without knowing: each is closed
        (1012, reconnect with `since` after a jittered delay) before the first record
        after the hole is pushed. Its `since` then gets `recovered: true` from an
        edge that read the hole, `false` here.
        """
        self.start_partition(partition, first_offset)
        for conn in list(self.connections.values()):
            self.close(conn, *CLOSE_GAP, drop="stream_gap")

    def publish(self, publication: Publication, receive_epoch: float | None, live: bool) -> int:
        if not self.history.append(publication):
            return 0  # a record read twice (after a consumer restart) is never pushed twice
        self.index.add(publication)
        if not live:
            return 0
        started = time.perf_counter()
        recipients = self.hub.recipients(publication.topic, publication.type, publication.room)
        count = (
            self.fanout.deliver(
                recipients, publication.frame, publication.partition, publication.offset
            )
            if recipients
            else 0
        )
        tally = self._tally
        tally.fanout.observe(time.perf_counter() - started)
        tally.messages += 1
        if count:
            tally.deliveries += count
            if receive_epoch is not None:
                tally.received.append(receive_epoch)
        if not self._tally_scheduled:
            # After the fan-out's flush of this turn (scheduled by the first delivery).
            self._tally_scheduled = True
            self.loop.call_soon(self._apply_tally)
        return count

    def _apply_tally(self) -> None:
        self._tally_scheduled = False
        self._tally.apply()

    def go_live(self) -> None:
        # Upgrades are refused until now: the history is filled and the stream is live.
        self.caught_up = True

    def skip(self, partition: int, offset: int) -> None:
        self.history.advance(partition, offset)

    def expire_history(self, now: float) -> None:
        """The history's age bound, and the replay index letting go of what it evicted
        (a replay that had still to send some of it cannot be exact any more: 4008)."""
        self.history.expire(now)
        self.index.trim()
        self.fanout.drop_overtaken()

    # ---- connecting and requests -------------------------------------------

    def reserve(self) -> bool:
        """Hold a connection slot across a handshake's awaits; False when the edge is full.

        Every reservation is released (`release`) whatever the handshake's outcome;
        a connection opened meanwhile counts in `connections` instead.
        """
        if len(self.connections) + self._reserved >= self.settings.max_connections:
            return False
        self._reserved += 1
        return True

    def release(self) -> None:
        self._reserved -= 1

    def open(self, conn: Connection, request: ConnectRequest) -> None:
        """Register conn and queue `connected` plus any replay, in one synchronous step.

        All or nothing: if any step raises, conn is taken out of every index again
        (a connection counted and pushed to but never told `connected` is the worst
        of both) and the error goes to the caller, which still owns the socket.
        """
        self.fanout.attach(conn)
        self.connections[conn.id] = conn
        if isinstance(conn, SseConnection):
            self.sse_connections.add(conn)
        try:
            self.tokens.add(conn)
            opened = self.dispatcher.open(conn, request, time.time())
            if opened.unknown_partitions:
                self._unknown[conn] = self.loop.time() + UNKNOWN_PARTITION_GRACE
            self.fanout.send(conn, conn.greeting(opened.hello))
            self.fanout.replay(conn, opened.replay)
            for job in opened.replay:
                if isinstance(job, DeepJob) and self.deep is not None:
                    self.deep.start(conn, job)  # its older part comes from the bus
        except BaseException:
            self.forget(conn)
            raise
        self._count_recovery(opened.recovered)

    def handle_text(self, conn: Connection, data: str | bytes) -> None:
        if conn.closed:
            return
        answer = self.dispatcher.handle(conn, data, self.loop.time(), time.time())
        if answer.renewal is not None:
            self._renewals.start(conn, answer.renewal)
            return
        if answer.presence is not None:
            self._query_presence(conn, answer.presence)
            return
        self.metrics.requests.labels(answer.outcome).inc()
        if answer.reply is None:
            self.close(conn, *CLOSE_ABUSE, drop="rate_limited")
            return
        self._count_recovery(answer.recovered)
        self._reply(conn, answer.reply)
        if answer.changed:
            self._selection_changed(conn, answer.replay)

    def _query_presence(self, conn: Connection, query: PresenceQuery) -> None:
        """Answer a `presence` request once the batched read is back (never blocks)."""
        if self.presence is None:
            self.metrics.requests.labels("fail").inc()
            reply = protocol.reply(query.request_id, "presence", "presence is off on this edge")
            self._reply(conn, reply)
            return
        future = self.presence.query(query.room)

        def answer(done: asyncio.Future[dict[str, object]]) -> None:
            if done.cancelled() or done.exception() is not None:
                error, extra = "presence is unavailable right now, retry", None
            else:
                error, extra = "", {"presence": done.result()}
            self.metrics.requests.labels("fail" if error else "ok").inc()
            if not conn.closed:
                reply = protocol.reply(query.request_id, "presence", error, extra)
                self._reply(conn, reply)

        future.add_done_callback(answer)

    def _selection_changed(self, conn: Connection, jobs: list[ReplayJob]) -> None:
        """After a change of rooms or subscriptions: replay `jobs`, then follow the stream.

        A replay already running stops following the stream here (it selects with the
        old rooms and subscriptions); a new follow job takes over from this position.
        """
        if not jobs and not self.fanout.replaying(conn):
            return
        # Rooms or subscriptions it left: nothing more of them, from any replay.
        self.fanout.narrow(conn, self.hub.rooms_of(conn), self.hub.subscriptions_of(conn))
        self.fanout.pin(conn, self.history.positions())
        self.fanout.replay(conn, [*jobs, self.dispatcher.follow(conn)])
        for job in jobs:
            if isinstance(job, DeepJob) and self.deep is not None:
                self.deep.start(conn, job)

    # ---- token lifetime ---------------------------------------------------

    def _apply_renewal(self, conn: Connection, renewal: Renewal) -> None:
        """A refresh whose token is not revoked: its claims and rights in force."""
        old = conn.claims
        reply = self.dispatcher.renew(conn, renewal, time.time())
        self._selection_changed(conn, [])  # the new claims may have taken rooms away
        self.tokens.replaced(conn, old)
        self.metrics.requests.labels("ok").inc()
        self._reply(conn, reply)

    def _refuse_renewal(self, conn: Connection, renewal: Renewal, error: str) -> None:
        self.metrics.requests.labels("fail").inc()
        self._reply(conn, self.dispatcher.refuse_renewal(renewal, error))

    def _reply(self, conn: Connection, body: bytes) -> None:
        """A request's reply: queued on the socket, or handed to whoever waits for it."""
        frame = conn.reply_frame(body)
        if frame is not None:
            self.fanout.send(conn, frame)

    def expire_tokens(self, now: float) -> int:
        """Close (4001) the connections whose token ended more than the grace ago.

        Costs O(connections due + seconds passed) per call (see ExpiryWheel).
        """
        due = self.tokens.ended(now)
        for conn in due:
            self.close(conn, *CLOSE_EXPIRED, drop="token_expired")
        return len(due)

    def _count_recovery(self, recovered: bool | None) -> None:
        if recovered is not None:
            self.metrics.recoveries.labels(str(recovered).lower()).inc()

    def forget_unknown_partitions(self) -> None:
        """Past their grace, drop what sessions remember of partitions not read here."""
        now = self.loop.time()
        for conn in [c for c, deadline in self._unknown.items() if deadline <= now]:
            del self._unknown[conn]
            self.dispatcher.forget_unknown_partitions(conn)

    def pong(self, conn: Connection, payload: bytes) -> None:
        # Through the same pending buffer as everything else, so frames never interleave.
        self.fanout.send(conn, pong_frame(payload))

    # ---- closing ----------------------------------------------------------

    def stale(self, before: float) -> list[Connection]:
        return [c for c in self.connections.values() if c.last_life < before]

    def close(self, conn: Connection, code: int, reason: str, *, drop: str | None = None) -> None:
        """Close from the server side: pending frames first, then the close frame."""
        if conn.closed:
            return
        if drop != "slow_consumer":
            self.fanout.flush_now(conn)
        self.forget(conn)
        if drop is not None:
            self.metrics.drops.labels(drop).inc()
            self.metrics.transport_drops.labels(conn.transport_name, drop).inc()
        if not conn.gone:
            self._closing.add(conn)
            conn.send_close(code, reason, CLOSE_TIMEOUT, ABORT_AFTER_CLOSE)

    def refuse(self, conn: Connection, code: int, reason: str) -> None:
        """A client frame broke the protocol or a limit (1002, 1007, 1009)."""
        self.close(conn, code, reason, drop="frame_too_large" if code == 1009 else None)

    def lost(self, conn: Connection) -> None:
        """The client closed, or the socket is gone."""
        self.forget(conn)
        self._closing.discard(conn)

    def forget(self, conn: Connection) -> None:
        """Take conn out of every index; nothing more is queued to it."""
        conn.closed = True
        self.fanout.discard(conn)
        self.hub.remove(conn)
        self.connections.pop(conn.id, None)
        self.sse_connections.discard(conn)
        self.tokens.remove(conn)
        self._renewals.cancel(conn)
        self._unknown.pop(conn, None)

    def _slow(self, conn: Connection) -> None:
        self.close(conn, *CLOSE_SLOW, drop="slow_consumer")

    async def wait_closed(self, timeout: float) -> None:
        """Until every connection closed from our side has its socket closed."""
        deadline = self.loop.time() + timeout
        while self._closing and self.loop.time() < deadline:
            self._closing = {c for c in self._closing if not c.gone}
            await asyncio.sleep(0.05)

    def abort_all(self) -> None:
        """At shutdown: end every socket still open, answered or not."""
        for conn in [*self.connections.values(), *self._closing]:
            conn.abort()
        self._closing.clear()
