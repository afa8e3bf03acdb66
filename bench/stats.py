"""Statistics of a run: percentiles, rates, ratios to the peers, target verdicts. No I/O."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (fraction in [0, 1])."""
    if not sorted_values:
        raise ValueError("no values")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction {fraction} is outside [0, 1]")
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return float(sorted_values[rank - 1])


@dataclass(frozen=True, slots=True)
class Latency:
    """Publish-to-deliver latency summary in milliseconds."""

    count: int
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency | None:
        if not seconds:
            return None
        ordered = sorted(seconds)
        return cls(
            count=len(ordered),
            p50=round(percentile(ordered, 0.50) * 1000, 2),
            p90=round(percentile(ordered, 0.90) * 1000, 2),
            p99=round(percentile(ordered, 0.99) * 1000, 2),
            max=round(ordered[-1] * 1000, 2),
        )


@dataclass(frozen=True, slots=True)
class Delivery:
    """How many deliveries arrived against how many were due, connection by connection."""

    expected: int
    received: int
    lost: int
    duplicated: int

    @classmethod
    def of(cls, counts: Sequence[int], per_connection: int, connections: int) -> Delivery:
        """counts: messages each open connection got; connections that failed count as lost."""
        lost = sum(max(0, per_connection - c) for c in counts)
        lost += per_connection * max(0, connections - len(counts))
        duplicated = sum(max(0, c - per_connection) for c in counts)
        return cls(
            expected=per_connection * connections,
            received=sum(counts),
            lost=lost,
            duplicated=duplicated,
        )


def rate(count: float, seconds: float) -> float | None:
    return round(count / seconds, 1) if seconds > 0 else None


def micros_per(cpu_seconds: float, count: int) -> float | None:
    return round(cpu_seconds * 1e6 / count, 2) if count > 0 else None


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """ours / theirs, or None when either side was not measured."""
    if ours is None or theirs is None or theirs == 0:
        return None
    return round(ours / theirs, 3)


@dataclass(frozen=True, slots=True)
class Verdict:
    name: str
    target: str
    measured: float | None
    met: bool | None
    gap: str

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "target": self.target,
            "measured": self.measured,
            "met": self.met,
            "gap": self.gap,
        }


def verdict_lines(verdicts: list[dict[str, Any]]) -> list[str]:
    """The printed summary's lines for verdicts (as in results), each missed one's cause below it."""
    lines = []
    for verdict in verdicts:
        state = {True: "MET", False: "NOT MET", None: "NOT MEASURED"}[verdict["met"]]
        lines.append(f"target {verdict['target']}: {state} ({verdict['gap']})")
        if "why" in verdict:
            lines.append(f"  why: {verdict['why']}")
    return lines


def at_most(name: str, target: str, measured: float | None, limit: float, unit: str) -> Verdict:
    """A target of the form measured <= limit; gap says by how much it is missed or met."""
    if measured is None:
        return Verdict(name, target, None, None, "not measured")
    met = measured <= limit
    if met:
        gap = f"met with {limit - measured:.3g} {unit} to spare"
    else:
        times = f" ({measured / limit:.2f}x the limit)" if limit > 0 else ""
        gap = f"{measured - limit:.3g} {unit} over{times}"
    return Verdict(name, target, measured, met, gap)


def at_least(name: str, target: str, measured: float | None, limit: float, unit: str) -> Verdict:
    """A target of the form measured >= limit (rates: higher is better)."""
    if measured is None:
        return Verdict(name, target, None, None, "not measured")
    met = measured >= limit
    if met:
        gap = f"met with {measured - limit:.3g} {unit} to spare"
    else:
        times = f" ({measured / limit:.2f}x the limit)" if limit > 0 else ""
        gap = f"{limit - measured:.3g} {unit} short{times}"
    return Verdict(name, target, measured, met, gap)
