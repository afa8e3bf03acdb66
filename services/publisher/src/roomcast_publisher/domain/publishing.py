"""Publishing: drafts become acknowledged Kafka records, each client message_id at most once.

A message_id given by the client is an idempotency key. Before producing, the
publisher claims it in the store with a short-lived "pending" marker (atomic, so of
two concurrent requests exactly one publishes); after the broker acknowledged, the
receipt replaces the marker for the idempotency window; after a failure the marker
is released so the client may retry. A duplicate that arrives while the first is
still pending waits for its receipt, and gets ``publish_in_progress`` if it does
not come in time. When the outcome is unknown (the broker died holding the record)
the marker is kept until it expires, so a quick retry cannot add a duplicate. Without a usable store, messages that carry a message_id are
refused rather than published unchecked: a duplicate would be worse than a retry.
Generated ids need no store.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from roomcast_core.wire import Message, format_time
from roomcast_publisher.domain.ports import (
    Claim,
    Claimed,
    IdempotencyStore,
    InProgress,
    OutcomeUnknown,
    PublishObserver,
    Receipt,
    RecordSink,
    SinkUnavailable,
    StoreUnavailable,
)

log = logging.getLogger(__name__)


class Reason(StrEnum):
    KAFKA_UNAVAILABLE = "kafka_unavailable"
    IDEMPOTENCY_UNAVAILABLE = "idempotency_unavailable"
    IN_PROGRESS = "publish_in_progress"
    OUTCOME_UNKNOWN = "publish_outcome_unknown"


@dataclass(frozen=True, slots=True)
class Draft:
    topic: str | None
    type: str | None
    room: str | None
    payload: Any
    message_id: str | None = None  # None: the publisher names the message


@dataclass(frozen=True, slots=True)
class Refusal:
    """A message that was not published; the caller may retry it."""

    message_id: str
    reason: Reason
    detail: str


Outcome = Receipt | Refusal


@dataclass(frozen=True, slots=True)
class PublishPolicy:
    idempotency_window: int  # seconds a receipt answers duplicates
    hold_seconds: float  # lifetime of a pending marker: longer than any publish can take
    wait_seconds: float  # how long a duplicate waits for the first publish to finish
    poll_seconds: float = 0.05


def uuid4_hex_source(chunk: int = 256) -> Callable[[], str]:
    """uuid4().hex, drawn from one os.urandom call per `chunk` ids instead of one each.

    A batch of generated ids otherwise costs a system call per message. The pool is
    dropped in a forked child, so two processes never hand out the same ids.
    """
    pool: list[str] = []
    owner = [os.getpid()]

    def next_id() -> str:
        if owner[0] != os.getpid():
            pool.clear()
            owner[0] = os.getpid()
        if not pool:
            raw = bytearray(os.urandom(16 * chunk))
            for i in range(0, len(raw), 16):
                raw[i + 6] = (raw[i + 6] & 0x0F) | 0x40  # version 4
                raw[i + 8] = (raw[i + 8] & 0x3F) | 0x80  # RFC 4122 variant
            text = raw.hex()
            pool.extend(text[j : j + 32] for j in range(0, len(text), 32))
        return pool.pop()

    return next_id


new_message_id = uuid4_hex_source()


def millisecond_clock(wall: Callable[[], float] = time.time) -> Callable[[], str]:
    """The receive time as roomcast_core.wire.now_time writes it (RFC 3339 UTC,
    milliseconds), with the date and time of day formatted once per second: datetime
    and strftime cost more than the rest of a message's bookkeeping."""
    second = -1
    prefix = ""

    def now() -> str:
        nonlocal second, prefix
        milliseconds = int(wall() * 1000)
        current, rest = divmod(milliseconds, 1000)
        if current != second:
            prefix = format_time(current)[:-4]  # up to and with the seconds' "."
            second = current
        return f"{prefix}{rest:03d}Z"

    return now


class Publisher:
    def __init__(
        self,
        sink: RecordSink,
        store: IdempotencyStore,
        observer: PublishObserver,
        policy: PublishPolicy,
        *,
        clock: Callable[[], str] | None = None,
        new_id: Callable[[], str] = new_message_id,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._sink = sink
        self._store = store
        self._observer = observer
        self._policy = policy
        self._clock = clock or millisecond_clock()
        self._new_id = new_id
        self._monotonic = monotonic
        self._sleep = sleep
        # Receipts waiting to be recorded, and the one task recording them: requests
        # answered while a recording is on the wire join the next, without a task each.
        self._unrecorded: list[Receipt] = []
        self._recorder: asyncio.Task[None] | None = None

    async def publish(self, drafts: Sequence[Draft]) -> list[Outcome]:
        """One outcome per draft, in order. Drafts must not repeat a message_id."""
        return await self._publish(drafts, retry_released=True)

    async def _publish(self, drafts: Sequence[Draft], *, retry_released: bool) -> list[Outcome]:
        receive_time = self._clock()
        messages = [
            Message(
                topic=d.topic,
                type=d.type,
                room=d.room,
                payload=d.payload,
                message_id=d.message_id or self._new_id(),
                receive_time=receive_time,
            )
            for d in drafts
        ]
        outcomes: list[Outcome | None] = [None] * len(messages)
        tokens: dict[int, str] = {}
        waiting: list[int] = []
        claims = await self._claim(drafts)
        for index, claim in claims.items():
            if isinstance(claim, Claimed):
                tokens[index] = claim.token
            elif isinstance(claim, Receipt):
                outcomes[index] = claim
            elif isinstance(claim, InProgress):
                waiting.append(index)
            else:
                outcomes[index] = claim
        held_elsewhere = set(waiting)
        to_send = [
            i for i in range(len(messages)) if outcomes[i] is None and i not in held_elsewhere
        ]

        try:
            sent = await self._send([messages[i] for i in to_send])
        except Exception:
            # The sink answers every record's failure itself; an exception here is a
            # bug before or around the hand-over. Let the ids go so a retry can publish.
            await self._settle_claims([], [(messages[i].message_id, t) for i, t in tokens.items()])
            raise
        for index, outcome in zip(to_send, sent, strict=True):
            outcomes[index] = outcome
        receipts: list[Receipt] = []
        releases: list[tuple[str, str]] = []
        for index, token in tokens.items():
            result = outcomes[index]
            if isinstance(result, Receipt):
                receipts.append(result)
            elif isinstance(result, Refusal) and result.reason is not Reason.OUTCOME_UNKNOWN:
                releases.append((result.message_id, token))
            # An unknown outcome keeps its marker until hold_seconds: an immediate
            # retry gets publish_in_progress instead of a likely duplicate.
        if releases:
            # Before answering, so that a client retrying at once finds the id free.
            await self._settle_claims([], releases)
        if receipts:
            # After answering: the 202 waits for Kafka, not for Redis. Until the receipt
            # is written the id stays claimed, so a duplicate arriving meanwhile waits
            # for the receipt (_await_first) instead of publishing again.
            self._unrecorded.extend(receipts)
            if self._recorder is None:
                self._recorder = asyncio.create_task(self._record(), name="record-receipts")

        if waiting:
            replies = await asyncio.gather(
                *(self._await_first(drafts[i], retry_released) for i in waiting)
            )
            for index, outcome in zip(waiting, replies, strict=True):
                outcomes[index] = outcome
        return [outcome for outcome in outcomes if outcome is not None]

    async def _claim(self, drafts: Sequence[Draft]) -> dict[int, Claim | Refusal]:
        keyed = [(i, d.message_id) for i, d in enumerate(drafts) if d.message_id is not None]
        if not keyed:
            return {}
        try:
            claims = await self._store.claim([mid for _, mid in keyed], self._policy.hold_seconds)
        except StoreUnavailable as exc:
            self._observer.failed(Reason.IDEMPOTENCY_UNAVAILABLE)
            detail = f"idempotency store unavailable, message not published: {exc}"
            return {i: Refusal(mid, Reason.IDEMPOTENCY_UNAVAILABLE, detail) for i, mid in keyed}
        return {i: claim for (i, _), claim in zip(keyed, claims, strict=True)}

    async def _send(self, messages: Sequence[Message]) -> list[Outcome]:
        """One produce call for the whole request: the sink keeps the order of `messages`."""
        if not messages:
            return []
        started = self._monotonic()
        deliveries = await self._sink.produce(messages)
        elapsed = self._monotonic() - started
        outcomes: list[Outcome] = []
        acknowledged = 0
        for message, delivery in zip(messages, deliveries, strict=True):
            if isinstance(delivery, str):
                acknowledged += 1
                outcomes.append(Receipt(message.message_id, delivery, message.receive_time))
            elif isinstance(delivery, OutcomeUnknown):
                self._observer.failed(Reason.OUTCOME_UNKNOWN)
                outcomes.append(
                    Refusal(
                        message.message_id,
                        Reason.OUTCOME_UNKNOWN,
                        f"the broker failed before confirming; the message may or may not "
                        f"be published: {delivery}",
                    )
                )
            else:
                outcomes.append(self._refuse(message, delivery))
        if acknowledged:
            self._observer.produced(acknowledged, elapsed)
        return outcomes

    def _refuse(self, message: Message, exc: SinkUnavailable) -> Refusal:
        self._observer.failed(Reason.KAFKA_UNAVAILABLE)
        return Refusal(message.message_id, Reason.KAFKA_UNAVAILABLE, f"not published: {exc}")

    async def close(self) -> None:
        """Wait for the receipts still being recorded (call before closing the store)."""
        while self._recorder is not None:
            await asyncio.gather(self._recorder, return_exceptions=True)

    async def _record(self) -> None:
        try:
            while self._unrecorded:
                receipts, self._unrecorded = self._unrecorded, []
                await self._settle_claims(receipts, [])
        finally:
            self._recorder = None

    async def _settle_claims(
        self, receipts: Sequence[Receipt], releases: Sequence[tuple[str, str]]
    ) -> None:
        if not receipts and not releases:
            return
        try:
            await self._store.settle(receipts, releases, self._policy.idempotency_window)
        except StoreUnavailable as exc:
            # The message is published (or not) regardless; the pending marker
            # expires after hold_seconds, until then duplicates get 409.
            log.warning("could not record idempotency outcome", extra={"error": str(exc)})

    async def _await_first(self, draft: Draft, retry_released: bool) -> Outcome:
        message_id = draft.message_id
        assert message_id is not None
        deadline = self._monotonic() + self._policy.wait_seconds
        while True:
            try:
                found = await self._store.lookup(message_id)
            except StoreUnavailable as exc:
                self._observer.failed(Reason.IDEMPOTENCY_UNAVAILABLE)
                return Refusal(
                    message_id,
                    Reason.IDEMPOTENCY_UNAVAILABLE,
                    f"idempotency store unavailable, message not published: {exc}",
                )
            if isinstance(found, Receipt):
                return found
            if found is None:
                # The first attempt failed and let go of the id: try it ourselves, once.
                if retry_released:
                    return (await self._publish([draft], retry_released=False))[0]
                break
            if self._monotonic() >= deadline:
                break
            await self._sleep(self._policy.poll_seconds)
        self._observer.failed(Reason.IN_PROGRESS)
        return Refusal(
            message_id,
            Reason.IN_PROGRESS,
            "a publish of this message_id is still in progress; retry later",
        )
