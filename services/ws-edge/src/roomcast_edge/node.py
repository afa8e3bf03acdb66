"""The edge node: connections, their rooms and subscriptions, and the live stream.

Everything here runs synchronously on the event loop. That is what makes recovery
exact: reading the history and registering a connection in the hub happen in one
step with no await in between, so no message can fall into the seam or arrive twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

from roomcast_core.settings import EdgeSettings
from roomcast_edge.connection import Connection
from roomcast_edge.domain import protocol
from roomcast_edge.domain.frames import pong_frame, text_frame
from roomcast_edge.domain.history import History
from roomcast_edge.domain.hub import ANY_TYPE, Hub
from roomcast_edge.domain.positions import format_vector
from roomcast_edge.domain.publication import Publication
from roomcast_edge.fanout import Fanout
from roomcast_edge.metrics import EdgeMetrics

log = logging.getLogger(__name__)

# A client whose requests are refused this many times in a row is closed (1008).
ABUSE_STRIKES = 200
# Seconds the server waits for the client's answer to its close frame.
CLOSE_TIMEOUT = 5.0
# After that, how long a client that stopped reading keeps its socket.
ABORT_AFTER_CLOSE = 5.0

CLOSE_HEARTBEAT = (4000, "heartbeat timeout")
CLOSE_SLOW = (4008, "slow consumer")
CLOSE_REVOKED = (1008, "token revoked")
CLOSE_ABUSE = (1008, "rate limit exceeded")
CLOSE_RESTART = (1012, "service restart")


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    """Connect-time parameters, already read from the URL."""

    rooms: list[str]
    topics: list[tuple[str, str, str]]  # (as written, topic, type)
    bad_topics: list[str]
    since: dict[int, int] | None


class Node:
    def __init__(
        self, settings: EdgeSettings, metrics: EdgeMetrics, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.loop = loop
        self.hub: Hub[Connection] = Hub()
        self.history = History(settings.history_size, settings.history_age)
        self.fanout = Fanout(loop, settings.max_outbound_bytes, self._slow)
        self.connections: dict[str, Connection] = {}
        self._by_jti: dict[str, set[Connection]] = {}
        # Connections whose close frame is out and whose socket is not closed yet.
        self._closing: set[Connection] = set()
        self.caught_up = False
        self.draining = False
        metrics.connections.set_function(lambda: len(self.connections))
        metrics.subscriptions.set_function(lambda: self.hub.subscription_count)

    # ---- the stream (PublicationSink) ---------------------------------------

    def start_partition(self, partition: int, first_offset: int) -> None:
        self.history.start(partition, first_offset)

    def publish(self, publication: Publication, receive_epoch: float | None, live: bool) -> int:
        if not self.history.append(publication) or not live:
            return 0  # a record read twice (after a consumer restart) is never pushed twice
        self.metrics.messages_in.inc()
        started = time.perf_counter()
        recipients = self.hub.recipients(publication.topic, publication.type, publication.room)
        count = (
            self.fanout.deliver(
                recipients, publication.frame, publication.partition, publication.offset
            )
            if recipients
            else 0
        )
        self.metrics.fanout_seconds.observe(time.perf_counter() - started)
        if count:
            self.metrics.deliveries.inc(count)
            if receive_epoch is not None:
                self.metrics.publish_to_deliver.observe(max(time.time() - receive_epoch, 0.0))
        return count

    def go_live(self) -> None:
        # Upgrades are refused until now: the history is filled and the stream is live.
        self.caught_up = True

    def skip(self, partition: int, offset: int) -> None:
        self.history.advance(partition, offset)

    # ---- connecting -------------------------------------------------------

    def open(self, conn: Connection, request: ConnectRequest) -> None:
        """Register conn and queue `connected` plus any replay, in one synchronous step."""
        claims = conn.claims
        refused: list[str] = []
        rooms = [r for r in request.rooms if protocol.allowed(claims.rooms, r)]
        refused.extend(r for r in request.rooms if r not in rooms)
        subscriptions: list[tuple[str, str]] = []
        for spec, topic, type_ in request.topics:
            if (
                protocol.allowed(claims.topics, topic)
                and len(subscriptions) < self.settings.max_subscriptions
            ):
                subscriptions.append((topic, type_))
            else:
                refused.append(spec)
        refused.extend(request.bad_topics)

        self.history.expire(time.time())
        positions = self.history.positions()
        self.connections[conn.id] = conn
        self._by_jti.setdefault(conn.jti, set()).add(conn)
        self.hub.add(conn)
        for room in rooms:
            self.hub.join(conn, room)
        for topic, type_ in subscriptions:
            self.hub.subscribe(conn, topic, type_)

        recovered: bool | None = None
        replay: list[bytes] = []
        since = request.since
        if since is not None:
            recovered = self.history.covers(since)
            self.metrics.recoveries.labels(str(recovered).lower()).inc()
            replay = [
                p.frame
                for p in self.history.after(since)
                if self.hub.matches(conn, p.topic, p.type, p.room)
            ]
            # A vector from an edge that is ahead of this one: what this edge has
            # not read yet the client already has, so it must not arrive twice.
            ahead = {p: o for p, o in since.items() if o > positions.get(p, -1)}
            conn.skip = ahead or None
        hello = protocol.connected(conn.id, rooms, format_vector(positions), refused, recovered)
        self.fanout.send(conn, text_frame(hello))
        for frame in replay:
            self.fanout.send(conn, frame)

    # ---- requests ---------------------------------------------------------

    def handle_text(self, conn: Connection, data: str | bytes) -> None:
        if conn.closed:
            return
        if not conn.bucket.take(self.loop.time()):
            conn.strikes += 1
            self.metrics.requests.labels("rate_limited").inc()
            if conn.strikes >= ABUSE_STRIKES:
                self.close(conn, *CLOSE_ABUSE, drop="rate_limited")
                return
            request_id, action = _echo(data)
            self._reply(conn, request_id, action, "rate limit exceeded, slow down")
            return
        conn.strikes = 0
        try:
            request = protocol.parse_request(data)
        except protocol.RequestError as exc:
            self.metrics.requests.labels("fail").inc()
            self._reply(conn, exc.request_id, exc.action, str(exc))
            return
        error, extra, replay = self._act(conn, request)
        self.metrics.requests.labels("fail" if error else "ok").inc()
        self._reply(conn, request.request_id, request.action, error, extra)
        for frame in replay:
            self.fanout.send(conn, frame)

    def _act(
        self, conn: Connection, request: protocol.Request
    ) -> tuple[str, dict[str, bool] | None, list[bytes]]:
        """(error message or "", extra reply fields, replayed frames)."""
        action = request.action
        if action == "ping":
            return "", None, []
        claims = conn.claims
        hub = self.hub
        if action in ("subscribe", "unsubscribe"):
            topic, type_ = request.topic, request.type
            assert topic is not None
            if action == "unsubscribe":
                hub.unsubscribe(conn, topic, type_)
                return "", None, []
            if not protocol.allowed(claims.topics, topic):
                return f"topic {topic!r} is not allowed by the token", None, []
            if (topic, type_) in hub.subscriptions_of(conn):
                return "", self._recovery_flag(request), []
            limit = self.settings.max_subscriptions
            if len(hub.subscriptions_of(conn)) >= limit:
                return f"too many subscriptions (at most {limit})", None, []
            replay = self._replay_topic(conn, request) if request.since is not None else []
            hub.subscribe(conn, topic, type_)
            return "", self._recovery_flag(request), replay
        room = request.room
        assert room is not None
        if action == "leave":
            hub.leave(conn, room)
            return "", None, []
        if not protocol.allowed(claims.rooms, room):
            return f"room {room!r} is not allowed by the token", None, []
        if room in hub.rooms_of(conn):
            return "", self._recovery_flag(request), []
        limit = self.settings.max_rooms
        if len(hub.rooms_of(conn)) >= limit:
            return f"too many rooms (at most {limit})", None, []
        replay = self._replay_room(conn, request) if request.since is not None else []
        hub.join(conn, room)
        return "", self._recovery_flag(request), replay

    def _recovery_flag(self, request: protocol.Request) -> dict[str, bool] | None:
        if request.since is None:
            return None
        self.history.expire(time.time())
        recovered = self.history.covers(request.since)
        self.metrics.recoveries.labels(str(recovered).lower()).inc()
        return {"recovered": recovered}

    def _replay_topic(self, conn: Connection, request: protocol.Request) -> list[bytes]:
        # Before subscribing: what the new subscription adds, minus what the
        # connection's other rooms/subscriptions already bring it.
        assert request.since is not None
        assert request.topic is not None
        topic, type_ = request.topic, request.type
        rooms = self.hub.rooms_of(conn)
        return [
            p.frame
            for p in self._history_after(request.since)
            if p.topic == topic
            and (type_ == ANY_TYPE or p.type == type_)
            and (p.room is None or p.room in rooms)
            and not self.hub.matches(conn, p.topic, p.type, p.room)
        ]

    def _replay_room(self, conn: Connection, request: protocol.Request) -> list[bytes]:
        assert request.since is not None
        room = request.room
        return [
            p.frame
            for p in self._history_after(request.since)
            if p.room == room and (p.topic is None or self.hub.wants_topic(conn, p.topic, p.type))
        ]

    def _history_after(self, since: dict[int, int]) -> Iterator[Publication]:
        self.history.expire(time.time())
        return self.history.after(since)

    def _reply(
        self,
        conn: Connection,
        request_id: object,
        action: str,
        error: str = "",
        extra: dict[str, bool] | None = None,
    ) -> None:
        self.fanout.send(conn, text_frame(protocol.reply(request_id, action, error, extra)))

    def pong(self, conn: Connection, payload: bytes) -> None:
        # Through the same pending buffer as everything else, so frames never interleave.
        self.fanout.send(conn, pong_frame(payload))

    # ---- closing ----------------------------------------------------------

    def stale(self, before: float) -> list[Connection]:
        return [c for c in self.connections.values() if c.last_life < before]

    def by_token(self, jti: str) -> list[Connection]:
        return list(self._by_jti.get(jti, ()))

    def tokens(self) -> list[str]:
        return list(self._by_jti)

    def close(self, conn: Connection, code: int, reason: str, *, drop: str | None = None) -> None:
        """Close from the server side: pending frames first, then the close frame."""
        if conn.closed:
            return
        if drop != "slow_consumer":
            self.fanout.flush_now(conn)
        self.forget(conn)
        if drop is not None:
            self.metrics.drops.labels(drop).inc()
        if not conn.transport.is_closing():
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
        conn.pending = []
        conn.pending_bytes = 0
        self.hub.remove(conn)
        self.connections.pop(conn.id, None)
        same_token = self._by_jti.get(conn.jti)
        if same_token is not None:
            same_token.discard(conn)
            if not same_token:
                del self._by_jti[conn.jti]

    def _slow(self, conn: Connection) -> None:
        self.close(conn, *CLOSE_SLOW, drop="slow_consumer")

    async def wait_closed(self, timeout: float) -> None:
        """Until every connection closed from our side has its socket closed."""
        deadline = self.loop.time() + timeout
        while self._closing and self.loop.time() < deadline:
            self._closing = {c for c in self._closing if not c.transport.is_closing()}
            await asyncio.sleep(0.05)

    def abort_all(self) -> None:
        """At shutdown: end every socket still open, answered or not."""
        for conn in [*self.connections.values(), *self._closing]:
            conn.transport.abort()
        self._closing.clear()


def _echo(data: str | bytes) -> tuple[object, str]:
    """request_id and action of a request we will not act on, for its reply."""
    try:
        request = protocol.parse_request(data)
    except protocol.RequestError as exc:
        return exc.request_id, exc.action
    return request.request_id, request.action
