"""In-memory ports for the publishing domain."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from roomcast_core.wire import Message
from roomcast_publisher.domain.ports import (
    Claim,
    Claimed,
    Delivery,
    InProgress,
    OutcomeUnknown,
    Receipt,
    SinkUnavailable,
    StoreUnavailable,
)


@dataclass
class FakeSink:
    """Appends to one log; `gate` holds acknowledgements back until set."""

    records: list[Message] = field(default_factory=list)
    refuse_enqueue: bool = False
    fail_delivery: bool = False
    unknown_delivery: bool = False
    gate: asyncio.Event | None = None
    calls: int = 0
    refuse_payloads: frozenset[object] = frozenset()  # these records fail, the rest land
    crash: bool = False  # a bug in the sink: produce() raises

    async def produce(self, messages: Sequence[Message]) -> list[Delivery]:
        if self.refuse_enqueue:
            return [SinkUnavailable("broker away")] * len(messages)
        self.calls += 1
        if self.crash:
            raise RuntimeError("sink bug")
        if self.gate is not None:
            await self.gate.wait()
        return [self._deliver(message) for message in messages]

    def _deliver(self, message: Message) -> Delivery:
        if self.fail_delivery or message.payload in self.refuse_payloads:
            return SinkUnavailable("no acknowledgement")
        if self.unknown_delivery:
            return OutcomeUnknown("broker died holding it")
        self.records.append(message)
        return f"0:{len(self.records) - 1}"


@dataclass
class FakeStore:
    values: dict[str, Receipt | str] = field(default_factory=dict)  # str: pending token
    down: bool = False
    released: list[str] = field(default_factory=list)
    claims: int = 0
    settles: int = 0
    settle_gate: asyncio.Event | None = None  # holds settle() back until set

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("connection refused")

    async def claim(self, message_ids: Sequence[str], hold_seconds: float) -> list[Claim]:
        self._check()
        result: list[Claim] = []
        for message_id in message_ids:
            self.claims += 1
            current = self.values.get(message_id)
            if current is None:
                token = f"t{self.claims}"
                self.values[message_id] = token
                result.append(Claimed(token))
            elif isinstance(current, Receipt):
                result.append(
                    Receipt(current.message_id, current.position, current.receive_time, True)
                )
            else:
                result.append(InProgress())
        return result

    async def lookup(self, message_id: str) -> Receipt | InProgress | None:
        self._check()
        current = self.values.get(message_id)
        if isinstance(current, Receipt):
            return Receipt(current.message_id, current.position, current.receive_time, True)
        return None if current is None else InProgress()

    async def settle(
        self,
        receipts: Sequence[Receipt],
        releases: Sequence[tuple[str, str]],
        window_seconds: int,
    ) -> None:
        if self.settle_gate is not None:
            await self.settle_gate.wait()
        self._check()
        self.settles += 1
        for receipt in receipts:
            self.values[receipt.message_id] = receipt
        for message_id, token in releases:
            if self.values.get(message_id) == token:
                del self.values[message_id]
                self.released.append(message_id)


@dataclass
class FakeObserver:
    durations: list[float] = field(default_factory=list)
    records: int = 0
    failures: list[str] = field(default_factory=list)

    def produced(self, count: int, seconds: float) -> None:
        self.records += count
        self.durations.append(seconds)

    def failed(self, reason: str) -> None:
        self.failures.append(reason)
