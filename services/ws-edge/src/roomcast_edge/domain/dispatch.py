"""What a connect or a request does to a session, decided without I/O.

The dispatcher changes the hub (rooms, subscriptions) and reads the history; it
returns what to answer and which replay jobs to run, and the caller sends them.
Changing the hub and fixing where a replay starts happen in one synchronous call:
that is what keeps recovery exact, no message can fall into the seam or arrive twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, TypeVar

from roomcast_core.tokens import TokenClaims
from roomcast_edge.domain import lifetime, protocol
from roomcast_edge.domain.deep_replay import DeepJob, Found
from roomcast_edge.domain.history import History
from roomcast_edge.domain.history_view import oldest_kept, oldest_kept_before
from roomcast_edge.domain.hub import Hub
from roomcast_edge.domain.positions import format_vector
from roomcast_edge.domain.presence import PresenceQuery
from roomcast_edge.domain.replay import ReplayJob, Selector
from roomcast_edge.domain.replay_index import Address, ReplayIndex
from roomcast_edge.domain.rewind import fewer_than, rewind_since
from roomcast_edge.domain.session import Session

S = TypeVar("S", bound=Session)

# A client whose requests are refused this many times in a row is closed (1008).
ABUSE_STRIKES = 200
# Partitions a `since` names that this edge does not read (yet): at most this many
# are remembered for the session, in case they are new partitions this edge will
# read soon; the others are bogus and forgotten at once.
MAX_UNKNOWN_PARTITIONS = 16


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    """Connect-time parameters, already read from the URL."""

    rooms: list[str]
    topics: list[tuple[str, str, str]]  # (as written, topic, type)
    # Refused while reading the URL: rooms past MAX_ROOMS, unreadable or surplus topics.
    refused: list[protocol.Refusal]
    since: dict[int, int] | None
    rewind: int = 0  # the latest N matching messages first (never with `since`)
    # Per partition, the first offset the bus still holds, when `since` is older than
    # the history and the bus can be read back (None: it cannot).
    log_start: dict[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    max_rooms: int
    max_subscriptions: int
    # A gap of more messages than this is not replayed: recovered is false.
    max_replay: int = 100_000


@dataclass(slots=True)
class Opened:
    """A session just registered: its `connected` message, then what to replay."""

    hello: bytes
    recovered: bool | None
    replay: list[ReplayJob] = field(default_factory=list)
    # The session's skip names partitions this edge does not read: to be dropped
    # (see `forget_unknown_partitions`) if they do not appear soon.
    unknown_partitions: bool = False


@dataclass(frozen=True, slots=True)
class Renewal:
    """A refresh whose new token verified for the same user and device.

    It is put in force (`Dispatcher.renew`) once the caller has checked that the
    token is not revoked, which needs I/O; until then nothing about the session changes.
    """

    request_id: Any
    claims: TokenClaims


@dataclass(slots=True)
class Answer:
    """The outcome of one client request.

    `reply` is None only when the client is to be closed for abuse; `outcome` is
    "ok", "fail" or "rate_limited"; `recovered` is set when the request had a `since`.
    `changed`: the session's rooms or subscriptions changed (a replay running for it
    must be pinned, see `replay.Replay.pin`).
    """

    reply: bytes | None
    outcome: str
    recovered: bool | None = None
    replay: list[ReplayJob] = field(default_factory=list)
    changed: bool = False
    # Set (and `reply` None) for a refresh waiting for its revocation check.
    renewal: Renewal | None = None
    # Set (and `reply` None) for a presence read the caller answers once it is done.
    presence: PresenceQuery | None = None


class Dispatcher(Generic[S]):
    def __init__(
        self,
        hub: Hub[S],
        history: History,
        limits: Limits,
        tokens: lifetime.TokenCheck | None = None,
    ) -> None:
        self.hub = hub
        self.history = history
        self.limits = limits
        # Fed by the caller with every publication the history keeps.
        self.index = ReplayIndex(partial(oldest_kept, history))
        self.tokens = tokens  # verifies refresh tokens; None: refresh is refused
        # Where the bus's log starts as last seen, for `since` on subscribe/join (which
        # cannot wait to ask; it answers None until first asked); None: no read-back
        # from the bus.
        self.known_log_start: Callable[[], dict[int, int] | None] | None = None
        # Shared ingest: per partition, the offset after which the history holds every
        # message of these index lists (channels taken up late have a gap before it).
        # None: the history holds every list whole (this edge reads every partition).
        self.coverage: Callable[[list[Address]], dict[int, int]] | None = None
        # Set by the request being handled: its `since` falls in such a gap.
        self._gap_left = False

    # ---- connecting -------------------------------------------------------

    def open(self, session: S, request: ConnectRequest, now: float) -> Opened:
        """Register the session with its allowed rooms and topics; select its replay."""
        claims = session.claims
        refused: list[protocol.Refusal] = []
        rooms = [r for r in request.rooms if protocol.allowed(claims.rooms, r)]
        refused.extend((r, protocol.NOT_ALLOWED) for r in request.rooms if r not in rooms)
        subscriptions: list[tuple[str, str]] = []
        for spec, topic, type_ in request.topics:
            if not protocol.allowed(claims.topics, topic):
                refused.append((spec, protocol.NOT_ALLOWED))
            elif len(subscriptions) < self.limits.max_subscriptions:
                subscriptions.append((topic, type_))
            else:
                refused.append((spec, protocol.TOO_MANY_SUBSCRIPTIONS))
        refused.extend(request.refused)

        history = self.history
        history.expire(now)
        positions = history.positions()
        hub = self.hub
        hub.add(session)
        for room in rooms:
            hub.join(session, room)
        for topic, type_ in subscriptions:
            hub.subscribe(session, topic, type_)

        recovered: bool | None = None
        replay: list[ReplayJob] = []
        since = request.since
        if since is not None:
            # It follows the stream: the session's live pushes come through it
            # until it has caught up.
            selector = Selector.everything(frozenset(rooms), frozenset(subscriptions))
            recovered = self._covers(since, selector)
            oldest = oldest_kept_before(history, since)
            job = ReplayJob(self.index, selector, history.rebase(since), None, oldest)
            log_start = request.log_start
            if log_start is None and self.coverage is not None and self.known_log_start:
                log_start = self.known_log_start()
            if not recovered and self._bus_holds(since, log_start):
                job = DeepJob(self.index, selector, since, job, self._targets_for(selector))
                recovered = True
            recovered, replay = self._bounded_replay(job, recovered)
            session.skip = _bounded(history.ahead(since), positions)
        elif request.rewind:
            selector = Selector.everything(frozenset(rooms), frozenset(subscriptions))
            replay = [self._rewind(selector, request.rewind, None)]
        hello = protocol.connected(
            session.id,
            rooms,
            format_vector(positions),
            refused,
            recovered,
            lifetime.expires_in(claims, now),
        )
        unknown = session.skip is not None and any(p not in positions for p in session.skip)
        return Opened(hello, recovered, replay, unknown)

    def _bus_holds(self, since: dict[int, int], log_start: dict[int, int] | None) -> bool:
        """Whether the bus still holds everything after `since` the history does not."""
        if log_start is None or self.history.ambiguous(since):
            return False
        partitions = self.history.partitions
        return all(
            p in log_start and since.get(p, -1) + 1 >= log_start[p] for p in partitions
        ) and all(p in partitions for p in since)

    def _rewind(self, selector: Selector, n: int, until: dict[int, int] | None) -> ReplayJob:
        """The replay of the latest `n` messages `selector` matches (up to `until`, else
        following the stream): from the history, or, when it holds fewer than `n` and
        the bus holds more, first searched for on the bus (a DeepJob)."""
        history, index = self.history, self.index
        if self.known_log_start is None or not fewer_than(index, selector, n):
            start = rewind_since(index, selector, n, until or history.positions())
            return ReplayJob(index, selector, start, until)
        log_start = self.known_log_start()
        if log_start is not None and history.covers(
            {p: log_start.get(p, 0) - 1 for p in history.partitions}
        ):
            start = rewind_since(index, selector, n, until or history.positions())
            return ReplayJob(index, selector, start, until)  # the bus holds nothing older

        # N counts up to now: what comes while the bus is searched is sent as live.
        now = until or history.positions()

        def start_after(older: Mapping[int, Sequence[Found]]) -> dict[int, int]:
            return rewind_since(index, selector, n, now, older)

        inner = ReplayJob(index, selector, {}, None, oldest_kept_before(history, {}))
        job = DeepJob(index, selector, {}, inner, self._targets_for(selector), n, start_after)
        if until is not None:
            job.pin(until)
        return job

    def _covers(self, since: dict[int, int], selector: Selector) -> bool:
        """Whether the history holds everything after `since` the selector can match."""
        if not self.history.covers(since):
            return False
        if self.coverage is None:
            return True
        covered = self.coverage(addresses(selector))
        return all(since.get(p, -1) >= offset for p, offset in covered.items())

    def _targets_for(self, selector: Selector) -> Callable[[], dict[int, int]]:
        """`deep_targets`, moved on past the gaps of the channels the selector reads."""
        coverage = self.coverage
        if coverage is None:
            return self.deep_targets
        channels = addresses(selector)

        def targets() -> dict[int, int]:
            targets = self.deep_targets()
            for partition, offset in coverage(channels).items():
                if partition in targets and offset > targets[partition]:
                    targets[partition] = offset
            return targets

        return targets

    def deep_targets(self) -> dict[int, int]:
        """Per partition, the offset after which the history (its index) takes a replay over."""
        history, index = self.history, self.index
        targets = history.positions()
        for partition in targets:
            oldest = oldest_kept(history, partition)
            if oldest is not None:
                targets[partition] = oldest - 1
            targets[partition] = max(targets[partition], index.dropped(partition))
        return targets

    def follow(self, session: S) -> ReplayJob:
        """A job reading from now on everything the session wants (see `replay`)."""
        hub = self.hub
        selector = Selector.everything(hub.rooms_of(session), hub.subscriptions_of(session))
        return ReplayJob(self.index, selector, self.history.positions(), None)

    def _bounded_replay(self, job: ReplayJob, recovered: bool) -> tuple[bool, list[ReplayJob]]:
        """(recovered, jobs): a gap over MAX_REPLAY messages is not replayed at all."""
        count = job.count(self.index)
        if count > self.limits.max_replay:
            return False, []
        return recovered, [job] if count else []

    def forget_unknown_partitions(self, session: S) -> None:
        """Drop the session's skip entries for partitions this edge still does not read."""
        skip = session.skip
        if skip is None:
            return
        known = self.history.positions()
        for partition in [p for p in skip if p not in known]:
            del skip[partition]
        if not skip:
            session.skip = None

    # ---- requests ---------------------------------------------------------

    def handle(self, session: S, data: str | bytes, clock: float, now: float) -> Answer:
        """One request frame; `clock` is the rate limit's monotonic time, `now` wall time."""
        if not session.bucket.take(clock):
            session.strikes += 1
            if session.strikes >= ABUSE_STRIKES:
                return Answer(None, "rate_limited")
            request_id, action = _echo(data)
            reply = protocol.reply(request_id, action, "rate limit exceeded, slow down")
            return Answer(reply, "rate_limited")
        session.strikes = 0
        try:
            request = protocol.parse_request(data)
        except protocol.RequestError as exc:
            return Answer(protocol.reply(exc.request_id, exc.action, str(exc)), "fail")
        if request.action == "refresh":
            return self._vet_refresh(session, request)
        if request.action == "presence":
            return self._presence(session, request)
        self._gap_left = False
        error, changed, job = self._act(session, request, now)
        recovered: bool | None = None
        replay: list[ReplayJob] = []
        if not error and request.since is not None:
            covered = self.history.covers(request.since) and not self._gap_left
            recovered = covered or isinstance(job, DeepJob)
            if job is not None:
                recovered, replay = self._bounded_replay(job, recovered)
        elif not error and job is not None:
            replay = [job]  # a rewind: at most MAX_REWIND messages
        extra = {"recovered": recovered} if recovered is not None else None
        reply = protocol.reply(request.request_id, request.action, error, extra)
        return Answer(reply, "fail" if error else "ok", recovered, replay, changed)

    # ---- token refresh ----------------------------------------------------

    def _vet_refresh(self, session: S, request: protocol.Request) -> Answer:
        assert request.token is not None
        if self.tokens is None:
            error = "refresh is not available on this edge"
        else:
            vetted = lifetime.vet_refresh(session.claims, request.token, self.tokens)
            if isinstance(vetted, TokenClaims):
                return Answer(None, "pending", renewal=Renewal(request.request_id, vetted))
            error = vetted
        return Answer(protocol.reply(request.request_id, request.action, error), "fail")

    def _presence(self, session: S, request: protocol.Request) -> Answer:
        room = request.room
        assert room is not None
        if room not in self.hub.rooms_of(session):
            error = f"not in room {room!r}: presence is for the rooms the connection is in"
            return Answer(protocol.reply(request.request_id, request.action, error), "fail")
        return Answer(None, "pending", presence=PresenceQuery(request.request_id, room))

    def renew(self, session: S, renewal: Renewal, now: float) -> bytes:
        """Put a vetted token in force: its claims, and only the rights they allow."""
        revoked = lifetime.narrow(self.hub, session, renewal.claims)
        session.claims = renewal.claims
        extra = {"expires_in": lifetime.expires_in(renewal.claims, now), "revoked": revoked}
        return protocol.reply(renewal.request_id, "refresh", "", extra)

    def refuse_renewal(self, renewal: Renewal, error: str) -> bytes:
        return protocol.reply(renewal.request_id, "refresh", error)

    def _act(
        self, session: S, request: protocol.Request, now: float
    ) -> tuple[str, bool, ReplayJob | None]:
        """(error message or "", whether the hub changed, the replay job of a `since`)."""
        action = request.action
        if action == "ping":
            return "", False, None
        claims = session.claims
        hub = self.hub
        if request.since is not None:
            self.history.expire(now)
        if action in ("subscribe", "unsubscribe"):
            topic, type_ = request.topic, request.type
            assert topic is not None
            if action == "unsubscribe":
                return "", hub.unsubscribe(session, topic, type_), None
            if not protocol.allowed(claims.topics, topic):
                return f"topic {topic!r} is not allowed by the token", False, None
            if (topic, type_) in hub.subscriptions_of(session):
                return "", False, None
            limit = self.limits.max_subscriptions
            if len(hub.subscriptions_of(session)) >= limit:
                return f"too many subscriptions (at most {limit})", False, None
            before = hub.rooms_of(session), hub.subscriptions_of(session)
            hub.subscribe(session, topic, type_)
            return "", True, self._change_replay(session, request, before)
        room = request.room
        assert room is not None
        if action == "leave":
            return "", hub.leave(session, room), None
        if not protocol.allowed(claims.rooms, room):
            return f"room {room!r} is not allowed by the token", False, None
        if room in hub.rooms_of(session):
            return "", False, None
        limit = self.limits.max_rooms
        if len(hub.rooms_of(session)) >= limit:
            return f"too many rooms (at most {limit})", False, None
        before = hub.rooms_of(session), hub.subscriptions_of(session)
        hub.join(session, room)
        return "", True, self._change_replay(session, request, before)

    def _change_replay(
        self,
        session: S,
        request: protocol.Request,
        before: tuple[frozenset[str], frozenset[tuple[str, str]]],
    ) -> ReplayJob | None:
        """What the new room or subscription adds over the session's others, up to now."""
        if request.since is None and not request.rewind:
            return None
        hub, history = self.hub, self.history
        old_rooms, old_subs = before
        selector = Selector(
            hub.rooms_of(session), hub.subscriptions_of(session), old_rooms, old_subs
        )
        until = history.positions()
        if request.since is None:
            assert request.rewind is not None
            return self._rewind(selector, request.rewind, until)
        since = history.rebase(request.since)
        oldest = oldest_kept_before(history, request.since)
        job = ReplayJob(self.index, selector, since, until, oldest)
        log_start = self.known_log_start() if self.known_log_start is not None else None
        covered = self._covers(request.since, selector)
        if covered or not self._bus_holds(request.since, log_start):
            # A gap of a channel taken up late, which the bus cannot fill, is not
            # recovered even where the history reaches back far enough.
            self._gap_left = not covered
            return job
        deep = DeepJob(self.index, selector, request.since, job, self._targets_for(selector))
        deep.pin(until)
        return deep


def _bounded(ahead: dict[int, int], positions: dict[int, int]) -> dict[int, int] | None:
    """What a vector from an edge further along says the client already has, bounded.

    What this edge has not read yet must not reach the client twice. Partitions this
    edge does not read are kept only a few (the lowest: added partitions are numbered
    on from the existing ones), so a vector naming thousands of bogus partitions
    leaves nothing behind.
    """
    unknown = sorted(p for p in ahead if p not in positions)
    for partition in unknown[MAX_UNKNOWN_PARTITIONS:]:
        del ahead[partition]
    return ahead or None


def _echo(data: str | bytes) -> tuple[object, str]:
    """request_id and action of a request we will not act on, for its reply."""
    try:
        request = protocol.parse_request(data)
    except protocol.RequestError as exc:
        return exc.request_id, exc.action
    return request.request_id, request.action


def addresses(selector: Selector) -> list[Address]:
    """The routing channels (one per address) of the index lists a selector reads."""
    keys = selector.keys()
    return sorted({key[0] for key in keys})
