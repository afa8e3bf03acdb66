"""The low-load latency summary: the gap to the direct feed from medians of rounds."""

from __future__ import annotations

from typing import Any

from bench.latency import PLANS, TARGET_GAP_MS, summarize


def point(p50: float, p99: float) -> dict[str, Any]:
    return {"latency_ms": {"p50": p50, "p99": p99}, "delivered": 10, "expected": 10}


def test_the_gap_is_between_medians_of_rounds() -> None:
    points = {
        "kafka_direct": [point(9.0, 30.0), point(50.0, 90.0), point(10.0, 35.0)],
        "publisher": [point(11.0, 40.0), point(12.0, 41.0), point(60.0, 99.0)],
        "publisher_no_id": [point(9.5, 30.0), point(9.0, 31.0), point(10.5, 32.0)],
    }
    result = summarize(PLANS["smoke"], 20, points)
    assert result["feeds"]["publisher"]["p50_ms_median"] == 12.0
    assert result["p50_gap_vs_direct_ms"] == {"publisher": 2.0, "publisher_no_id": -0.5}
    assert result["target_met"] is (TARGET_GAP_MS >= 2.0)
    assert result["feeds"]["kafka_direct"]["delivered"] == 30


def test_a_slower_publisher_misses_the_target() -> None:
    points = {
        "kafka_direct": [point(9.0, 30.0)],
        "publisher": [point(9.0 + TARGET_GAP_MS + 0.5, 40.0)],
        "publisher_no_id": [point(9.0, 30.0)],
    }
    assert summarize(PLANS["smoke"], 20, points)["target_met"] is False
