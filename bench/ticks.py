"""The `ticks` workload: many topics, each client subscribed to a few. No I/O.

A market-data stream is T topics x 4 types (T x 4 topic:type pairs); each of C clients
subscribes to K pairs drawn at random; the feed publishes messages to pairs drawn at
random at a rate that rises step by step. Most messages go to few or no clients, so a
server's cost is dominated by reading and routing the stream, not by the sends.

Every draw comes from a seeded generator: every server gets the same subscriptions and
the same sequence of messages.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

TYPES = ("trade", "quote", "book", "stats")
# A step is behind when its deliveries end this long after its feed does, or its p99 is
# this large: the backlog (Kafka lag or send queues) is growing faster than it drains.
BEHIND_DRAIN_SECONDS = 2.0
BEHIND_P99_MS = 1000.0
# Below this share of the asked rate the feed, not the server, set the step's rate.
FEED_SHORTFALL = 0.9
# The feed sequence of the unmeasured warm-up before the first step (steps count from 0).
WARMUP_STEP = -1


@dataclass(frozen=True, slots=True)
class TicksSpec:
    topics: int
    clients: int
    per_client: int
    rates: tuple[float, ...]
    step_seconds: float
    seed: int = 19
    types: tuple[str, ...] = TYPES
    # An unmeasured step at the first rate right after the clients connected: what a
    # server does once after a connect storm (a garbage collection over the new
    # connections' objects, first messages to each topic:type) lands there, for every
    # server alike, instead of in the first measured step.
    warmup_seconds: float = 0.0

    @property
    def pairs(self) -> int:
        return self.topics * len(self.types)

    def as_dict(self) -> dict[str, Any]:
        return {
            "topics": self.topics,
            "types": list(self.types),
            "pairs": self.pairs,
            "clients": self.clients,
            "per_client": self.per_client,
            "rates": list(self.rates),
            "step_seconds": self.step_seconds,
            "warmup_seconds": self.warmup_seconds,
            "seed": self.seed,
        }


def pair_of(spec: TicksSpec, index: int) -> tuple[str, str]:
    """(topic, type) of pair `index`: topics t0000.., types cycling fastest."""
    topic, kind = divmod(index, len(spec.types))
    return f"t{topic:04d}", spec.types[kind]


def subscriptions(spec: TicksSpec) -> list[tuple[int, ...]]:
    """The pairs each client subscribes to: `per_client` distinct ones, seeded."""
    rng = random.Random(spec.seed)
    count = min(spec.per_client, spec.pairs)
    return [tuple(sorted(rng.sample(range(spec.pairs), count))) for _ in range(spec.clients)]


def feed_sequence(spec: TicksSpec, step: int, count: int) -> list[int]:
    """The pair each of a step's `count` messages goes to, uniform over all pairs."""
    rng = random.Random(spec.seed * 1_000_003 + step)
    return [rng.randrange(spec.pairs) for _ in range(count)]


def expected_per_client(subs: Sequence[tuple[int, ...]], sequence: Sequence[int]) -> list[int]:
    """How many of a step's messages each client must get (one per matching message)."""
    per_pair = Counter(sequence)
    return [sum(per_pair.get(p, 0) for p in pairs) for pairs in subs]


def schedule(rate: float, seconds: float, elapsed: float) -> int:
    """Messages due by `elapsed` seconds into a step of `rate` msg/s lasting `seconds`."""
    total = max(1, round(rate * seconds))
    return min(total, int(elapsed * rate) + 1)


@dataclass(frozen=True, slots=True)
class Losses:
    expected: int
    received: int
    lost: int
    duplicated: int


def losses(counts: dict[int, int], expected: Sequence[int]) -> Losses:
    """Per client: short of expected is lost, beyond it duplicated; a missing client lost all."""
    lost = duplicated = 0
    for client, due in enumerate(expected):
        got = counts.get(client, 0)
        lost += max(0, due - got)
        duplicated += max(0, got - due)
    return Losses(
        expected=sum(expected), received=sum(counts.values()), lost=lost, duplicated=duplicated
    )


def is_behind(step: dict[str, Any]) -> bool:
    """A step the server did not keep up with: lost deliveries, a long drain, or a huge p99."""
    if step.get("lost", 0) > 0:
        return True
    drain = step.get("drain_seconds")
    if isinstance(drain, int | float) and drain > BEHIND_DRAIN_SECONDS:
        return True
    p99 = (step.get("latency_ms") or {}).get("p99")
    return isinstance(p99, int | float) and p99 > BEHIND_P99_MS


def feed_limited(step: dict[str, Any]) -> bool:
    """The driver could not offer the asked rate: the step says nothing about the server."""
    asked, offered = step.get("rate"), step.get("offered_per_s")
    if not isinstance(asked, int | float) or not isinstance(offered, int | float):
        return False
    return offered < FEED_SHORTFALL * asked


def ingest_ceiling(steps: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The highest offered rate the server kept up with, and why the ladder stopped there."""
    best: float | None = None
    stopped = "top of the ladder"
    for step in steps:
        if is_behind(step):
            stopped = f"behind at {step.get('rate'):g} msg/s"
            break
        if feed_limited(step):
            stopped = f"feed could not offer {step.get('rate'):g} msg/s"
            offered = step.get("offered_per_s")
            if isinstance(offered, int | float):
                best = max(best or 0.0, float(offered))
            break
        offered = step.get("offered_per_s")
        if isinstance(offered, int | float):
            best = max(best or 0.0, float(offered))
    return {
        "messages_per_s": best,
        "stopped": stopped,
        "lower_bound": not stopped.startswith("behind"),
    }
