"""Webhook deliveries without I/O: the body, its signature, when to try again.

One outbox entry is one delivery: its events were decided together (one presence
batch) and its id is the entry's stream id, so every retry, by whichever edge,
sends the same id with the same events.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import orjson

SIGNATURE_HEADER = "X-Roomcast-Signature"


@dataclass(frozen=True, slots=True)
class Schedule:
    """Retry timing. A retry never starts before the previous attempt's timeout is up,
    so two edges never post the same entry at once while a receiver is slow."""

    timeout: float
    base: float
    cap: float
    give_up_after: float

    def idle_before_retry(self, attempts: int) -> float:
        """Seconds since the last attempt began before attempt number `attempts` + 1."""
        backoff: float = self.base * 2.0 ** max(attempts - 1, 0)
        return self.timeout + min(backoff, self.cap)

    def expired(self, entry_ms: int, now_ms: int) -> bool:
        return now_ms - entry_ms > self.give_up_after * 1000


def entry_time_ms(entry_id: str) -> int:
    """The stream id's millisecond part: when the entry was added."""
    return int(entry_id.partition("-")[0])


def body(entry_id: str, time_ms: int, events_json: bytes) -> bytes:
    """{"id", "time_ms", "events"}: the same bytes for the same entry, every time."""
    events = orjson.loads(events_json)
    return orjson.dumps({"id": entry_id, "time_ms": time_ms, "events": events})


def signature(secret: str, raw: bytes) -> str:
    digest = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return f"sha256={digest}"
