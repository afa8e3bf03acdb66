"""The delivery ledger: what was published, who was entitled to it, what each client got.

Pure bookkeeping, no I/O: tests and the soak feed it the publisher's 202 receipts and
every push each client received, then `check()` answers, per client, which entitled
messages are missing, which arrived twice, and which arrived although the client was
not entitled to them (or were never acknowledged at all).

Scope of a client: the messages after the stream position its first `connected`
reported (`start`), up to `end` for a client that left for good (its own last seen
offsets: a departed client must still have no gap before the point it reached).
A client that was told `recovered: false` may miss messages: the edge reported them
unrecoverable, which is the honest answer the contract asks for.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

ANY_TYPE = "*"


def parse_position(text: str) -> tuple[int, int]:
    partition, _, offset = text.partition(":")
    return int(partition), int(offset)


def parse_vector(text: str) -> dict[int, int]:
    """ "0:41,1:-1" -> {0: 41, 1: -1}"""
    vector: dict[int, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        partition, offset = parse_position(part)
        vector[partition] = offset
    return vector


@dataclass(frozen=True, slots=True)
class Sent:
    """A message the publisher acknowledged (202) at a stream position."""

    message_id: str
    position: str
    topic: str | None = None
    type: str | None = None
    room: str | None = None


@dataclass(frozen=True, slots=True)
class Entitlement:
    """The rooms and (topic, type) subscriptions a connection was granted."""

    rooms: frozenset[str] = frozenset()
    subscriptions: frozenset[tuple[str, str]] = frozenset()

    def wants(self, topic: str | None, type_: str | None, room: str | None) -> bool:
        """The contract's delivery rule: room, topic+type (or *), both, or broadcast."""
        if room is not None and room not in self.rooms:
            return False
        if topic is None:
            return True
        return (topic, ANY_TYPE) in self.subscriptions or (
            type_ is not None and (topic, type_) in self.subscriptions
        )


@dataclass
class ClientRecord:
    name: str
    entitlement: Entitlement
    start: dict[int, int]
    received: list[tuple[str, str]] = field(default_factory=list)  # (message_id, position)
    unrecoverable: bool = False  # some connect or subscribe said recovered: false
    departed: bool = False  # left for good: in scope only up to what it reached

    def push(self, body: Mapping[str, Any]) -> None:
        """Record one push frame as received on the wire."""
        meta = body["meta"]
        self.received.append((str(meta["message_id"]), str(meta["position"])))

    def connected(self, hello: Mapping[str, Any]) -> None:
        """Record a (re)connect's `connected` message."""
        if hello.get("recovered") is False:
            self.unrecoverable = True

    def reached(self) -> dict[int, int]:
        """Per partition, the highest offset this client received."""
        highest: dict[int, int] = {}
        for _, position in self.received:
            partition, offset = parse_position(position)
            highest[partition] = max(offset, highest.get(partition, -1))
        return highest

    def vector(self) -> str:
        """The position vector this client keeps: its start, advanced by what it got."""
        merged = dict(self.start)
        for partition, offset in self.reached().items():
            merged[partition] = max(offset, merged.get(partition, -1))
        return ",".join(f"{p}:{o}" for p, o in sorted(merged.items()))

    def in_scope(self, position: str, reached: Mapping[int, int] | None = None) -> bool:
        partition, offset = parse_position(position)
        if offset <= self.start.get(partition, -1):
            return False
        if self.departed:
            return offset <= (reached if reached is not None else self.reached()).get(partition, -1)
        return True


@dataclass(frozen=True)
class ClientResult:
    name: str
    expected: int
    delivered: int
    missing: list[str]
    duplicates: list[str]
    unentitled: list[str]
    unknown: list[str]
    excused: bool  # missing messages were reported with recovered: false

    @property
    def ok(self) -> bool:
        lost = self.missing and not self.excused
        return not (lost or self.duplicates or self.unentitled or self.unknown)


@dataclass(frozen=True)
class LedgerReport:
    sent: int
    uncertain: int
    clients: list[ClientResult]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.clients)

    def text(self) -> str:
        lines = [
            f"ledger: {self.sent} messages acknowledged (202), {self.uncertain} of unknown outcome",
            f"{'client':<24} {'expected':>8} {'delivered':>9} {'missing':>7} {'dup':>5} "
            f"{'unentitled':>10} {'unknown':>7}  verdict",
        ]
        for c in self.clients:
            verdict = "ok" if c.ok else "FAIL"
            if c.ok and c.missing:
                verdict = "ok (recovered: false reported)"
            lines.append(
                f"{c.name:<24} {c.expected:>8} {c.delivered:>9} {len(c.missing):>7} "
                f"{len(c.duplicates):>5} {len(c.unentitled):>10} {len(c.unknown):>7}  {verdict}"
            )
        bad = [c for c in self.clients if not c.ok]
        lines.append(f"ledger: {len(self.clients) - len(bad)}/{len(self.clients)} clients ok")
        for c in bad[:5]:
            lines.append(
                f"  {c.name}: missing {c.missing[:5]} duplicates {c.duplicates[:5]} "
                f"unentitled {c.unentitled[:5]} unknown {c.unknown[:5]}"
            )
        return "\n".join(lines)


class Ledger:
    def __init__(self) -> None:
        self.sent: dict[str, Sent] = {}
        # Publishes whose answer never came (timeout, connection cut): they may or may
        # not have been published, so receiving them is no error and missing them neither.
        self.uncertain: set[str] = set()
        self.clients: list[ClientRecord] = []

    def acknowledged(self, sent: Sent) -> None:
        self.sent[sent.message_id] = sent
        self.uncertain.discard(sent.message_id)

    def maybe(self, message_id: str) -> None:
        if message_id not in self.sent:
            self.uncertain.add(message_id)

    def client(
        self,
        name: str,
        hello: Mapping[str, Any],
        subscriptions: Iterable[tuple[str, str]] = (),
    ) -> ClientRecord:
        """A client as its first `connected` describes it: granted rooms, start position.

        `subscriptions` are the ones asked for; those listed under `refused` are left out.
        """
        refused = set(hello.get("refused", ()))
        granted = frozenset(
            (topic, type_)
            for topic, type_ in subscriptions
            if f"{topic}:{type_}" not in refused and topic not in refused
        )
        record = ClientRecord(
            name=name,
            entitlement=Entitlement(frozenset(hello.get("rooms", ())), granted),
            start=parse_vector(str(hello.get("position", ""))),
        )
        record.connected(hello)
        self.clients.append(record)
        return record

    def expected(self, client: ClientRecord) -> list[str]:
        """Ids of the acknowledged messages this client is entitled to and in scope for."""
        reached = client.reached()
        wants = client.entitlement.wants
        return [
            s.message_id
            for s in self.sent.values()
            if client.in_scope(s.position, reached) and wants(s.topic, s.type, s.room)
        ]

    def check(self) -> LedgerReport:
        results = [self._check_client(c) for c in self.clients]
        return LedgerReport(len(self.sent), len(self.uncertain), results)

    def _check_client(self, client: ClientRecord) -> ClientResult:
        wants = client.entitlement.wants
        expected = self.expected(client)
        counts = Counter(message_id for message_id, _ in client.received)
        unentitled: list[str] = []
        unknown: list[str] = []
        for message_id in counts:
            sent = self.sent.get(message_id)
            if sent is None:
                if message_id not in self.uncertain:
                    unknown.append(message_id)
            elif not wants(sent.topic, sent.type, sent.room):
                unentitled.append(message_id)
        return ClientResult(
            name=client.name,
            expected=len(expected),
            delivered=sum(1 for m in expected if counts[m]),
            missing=[m for m in expected if not counts[m]],
            duplicates=[m for m, n in counts.items() if n > 1],
            unentitled=unentitled,
            unknown=unknown,
            excused=client.unrecoverable,
        )
