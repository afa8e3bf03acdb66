"""The stream's metrics, gathered per loop turn, export what per-message updates would."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from roomcast_edge.metrics import HistogramTally

BUCKETS = (0.001, 0.01, 0.1, 1.0)


def _page(registry: CollectorRegistry) -> list[str]:
    return [
        line
        for line in generate_latest(registry).decode().splitlines()
        if not line.startswith("#") and "_created" not in line
    ]


def _series(registry: CollectorRegistry) -> dict[str, float]:
    return {name: float(value) for name, value in (line.split(" ") for line in _page(registry))}


def _same(tallied: CollectorRegistry, one_by_one: CollectorRegistry) -> None:
    got, want = _series(tallied), _series(one_by_one)
    assert got.keys() == want.keys()
    for name, value in want.items():
        # Counts exactly; the sum is added in another order.
        assert got[name] == (pytest.approx(value, rel=1e-9) if name.endswith("_sum") else value)


def test_a_tally_exports_the_same_series_as_observing_each_value() -> None:
    rnd = random.Random(3)
    values = [rnd.choice((0.0, 0.001, 0.01, 5.0)) or rnd.random() / 10 for _ in range(2_000)]
    one_by_one, tallied = CollectorRegistry(), CollectorRegistry()
    each = Histogram("h", "h", buckets=BUCKETS, registry=one_by_one)
    tally = HistogramTally(Histogram("h", "h", buckets=BUCKETS, registry=tallied))
    # The installed prometheus_client takes the fast path: a layout change fails here.
    assert tally.direct
    for turn in range(4):
        for value in values[turn * 500 : (turn + 1) * 500]:
            each.observe(value)
            tally.observe(value)
        tally.apply()
        _same(tallied, one_by_one)
    tally.apply()  # nothing new: nothing changes
    _same(tallied, one_by_one)


def test_a_histogram_laid_out_otherwise_is_observed_value_by_value() -> None:
    registry = CollectorRegistry()
    histogram = Histogram("h", "h", buckets=BUCKETS, registry=registry)
    labelled = Histogram("l", "l", ["kind"], buckets=BUCKETS, registry=registry)
    tally = HistogramTally(labelled)  # a parent of labelled children has no buckets
    assert not tally.direct
    child = HistogramTally(labelled.labels("a"))
    assert child.direct
    tally = HistogramTally(histogram)
    tally.direct = False
    for value in (0.005, 0.5, 2.0):
        tally.observe(value)
    tally.apply()
    page = _page(registry)
    assert 'h_bucket{le="0.01"} 1.0' in page
    assert 'h_bucket{le="1.0"} 2.0' in page
    assert "h_count 3.0" in page
