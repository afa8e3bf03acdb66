"""Reading the edge's latency histogram out of a /metrics page."""

from __future__ import annotations

import math

from bench.promtext import bucket_delta, histogram_buckets, quantile_upper_bound

PAGE = """\
# HELP roomcast_edge_publish_to_deliver_seconds From receive_time to the write
# TYPE roomcast_edge_publish_to_deliver_seconds histogram
roomcast_edge_publish_to_deliver_seconds_bucket{le="0.001"} 10.0
roomcast_edge_publish_to_deliver_seconds_bucket{le="0.01"} 60.0
roomcast_edge_publish_to_deliver_seconds_bucket{le="0.1"} 99.0
roomcast_edge_publish_to_deliver_seconds_bucket{le="+Inf"} 100.0
roomcast_edge_publish_to_deliver_seconds_count 100.0
roomcast_edge_fanout_seconds_bucket{le="0.001"} 7.0
"""


def test_buckets_of_the_named_histogram_only() -> None:
    buckets = histogram_buckets(PAGE, "roomcast_edge_publish_to_deliver_seconds")
    assert buckets == {0.001: 10.0, 0.01: 60.0, 0.1: 99.0, math.inf: 100.0}
    assert histogram_buckets(PAGE, "missing") == {}
    assert histogram_buckets("garbage\n{le=", "roomcast_edge_fanout_seconds") == {}


def test_quantiles_are_the_bucket_bounds_that_hold_them() -> None:
    buckets = histogram_buckets(PAGE, "roomcast_edge_publish_to_deliver_seconds")
    assert quantile_upper_bound(buckets, 0.5) == 0.01
    assert quantile_upper_bound(buckets, 0.99) == 0.1
    assert quantile_upper_bound(buckets, 1.0) == math.inf
    assert quantile_upper_bound({}, 0.5) is None
    assert quantile_upper_bound({math.inf: 0.0}, 0.5) is None


def test_a_window_is_the_difference_of_two_scrapes() -> None:
    before = {0.001: 10.0, math.inf: 10.0}
    after = {0.001: 10.0, 0.01: 50.0, math.inf: 60.0}
    delta = bucket_delta(after, before)
    assert delta == {0.001: 0.0, 0.01: 50.0, math.inf: 50.0}
    assert quantile_upper_bound(delta, 0.5) == 0.01
