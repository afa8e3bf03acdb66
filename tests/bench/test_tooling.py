"""The benchmark's pure parts: statistics, /proc parsing, message recognition, reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from bench.messages import is_connected, publish_request, sent_time, wire_record
from bench.plan import FULL, QUICK, max_connections
from bench.report import ratios_vs, readme_table, targets, update_readme
from bench.stats import Delivery, Latency, at_most, micros_per, percentile, rate, ratio
from bench.system import CpuTimes, parse_stat, placement

from roomcast_core import wire


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile(values, 0.0) == 1.0
    assert percentile([7.0], 0.99) == 7.0


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_percentile_refuses_fractions_outside_0_1(fraction: float) -> None:
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0, 2.0], fraction)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


def test_latency_summary_is_in_milliseconds() -> None:
    latency = Latency.of([0.010, 0.002, 0.001, 0.050])
    assert latency is not None
    assert (latency.count, latency.p50, latency.max) == (4, 2.0, 50.0)
    assert latency.p99 == 50.0
    assert Latency.of([]) is None


def test_delivery_counts_losses_duplicates_and_failed_connections() -> None:
    delivery = Delivery.of([5, 4, 6, 5], per_connection=5, connections=5)
    assert delivery.expected == 25
    assert delivery.received == 20
    assert delivery.lost == 1 + 5  # one short, one connection never opened
    assert delivery.duplicated == 1


def test_rates_and_ratios_refuse_to_divide_by_nothing() -> None:
    assert rate(100, 2.0) == 50.0
    assert rate(100, 0.0) is None
    assert micros_per(0.5, 100_000) == 5.0
    assert micros_per(1.0, 0) is None
    assert ratio(8.0, 10.0) == 0.8
    assert ratio(None, 10.0) is None
    assert ratio(1.0, 0.0) is None


def test_targets_say_met_or_by_how_much_they_are_missed() -> None:
    met = at_most("x", "x <= 10", 8.0, 10.0, "ms")
    assert met.met is True
    assert "to spare" in met.gap
    missed = at_most("x", "x <= 10", 15.0, 10.0, "ms")
    assert missed.met is False
    assert "5 ms over" in missed.gap
    assert "1.50x" in missed.gap
    unknown = at_most("x", "x <= 10", None, 10.0, "ms")
    assert unknown.met is None
    assert unknown.gap == "not measured"


def test_parse_stat_reads_user_and_kernel_ticks_past_odd_command_names() -> None:
    # A command name with spaces and a ')' must not shift the fields.
    fields = ["S"] + ["0"] * 10 + ["250", "50"] + ["0"] * 30
    times = parse_stat("1234 (we ird) name) " + " ".join(fields))
    assert times.user == pytest.approx(2.5)
    assert times.system == pytest.approx(0.5)
    assert (times - CpuTimes(0.5, 0.25)).total == pytest.approx(2.25)


def test_placement_keeps_the_server_alone_when_it_can() -> None:
    two = placement([0, 1])
    assert (two.server, two.load, two.pinned) == (frozenset({0}), frozenset({1}), True)
    one = placement([3])
    assert one.pinned is False
    assert one.server == one.load == frozenset({3})


def test_plans_shrink_to_what_the_open_file_limit_holds() -> None:
    assert max_connections(20_000) == 19_500
    small = FULL.within(6000)
    assert small.connections == (1000, 5000)
    assert small.sustained_connections == 5000
    tiny = QUICK.within(100)
    assert tiny.connections == (100,)
    assert tiny.burst_messages == {100: 50}


def _push(request: dict[str, Any], receive_time: str) -> bytes:
    return orjson.dumps(
        {
            "topic": request["topic"],
            "type": request["type"],
            "payload": request["payload"],
            "meta": {"receive_time": receive_time, "message_id": "m", "position": "0:1"},
        }
    )


def test_a_client_recognises_benchmark_pushes_and_their_send_time() -> None:
    request = publish_request("run", 7)
    frame = _push(request, "2025-08-06T14:20:00.123Z")
    assert sent_time(frame) == pytest.approx(wire.parse_time("2025-08-06T14:20:00.123Z"))
    assert 180 <= len(frame) <= 240  # the size the reference figures were taken with


@pytest.mark.parametrize(
    "frame",
    [
        b"not json",
        b"[1, 2]",
        b'{"action": "connected"}',
        b'{"payload": {"seq": 1}, "meta": {"receive_time": "yesterday"}}',
        b'{"payload": "text", "meta": {"receive_time": "2025-08-06T14:20:00Z"}}',
        b'{"payload": {"seq": 1}, "meta": {"receive_time": 5}}',
    ],
)
def test_other_frames_are_not_counted_as_deliveries(frame: bytes) -> None:
    assert sent_time(frame) is None


def test_connected_messages_are_recognised() -> None:
    assert is_connected(b'{"action": "connected", "status": "ok"}')
    assert not is_connected(b'{"action": "subscribe"}')
    assert not is_connected(b"{oops")


def test_peers_get_exactly_the_wire_record() -> None:
    request = publish_request("run", 1)
    record = wire_record(request, "2025-08-06T14:20:00.000Z")
    decoded = wire.decode_value(orjson.dumps(record))
    assert decoded.payload == request["payload"]
    assert decoded.message_id == request["message_id"]
    assert decoded.topic == "bench"


def _scenarios(roomcast_cpu: float, node_cpu: float, p99: float) -> dict[str, Any]:
    def point(p99_ms: float, lost: int) -> dict[str, Any]:
        return {
            "offered_deliveries_per_s": 50_000.0,
            "lost": lost,
            "duplicated": 0,
            "cpu_us_per_delivery": 3.0,
            "latency_ms": {"p50": 5.0, "p99": p99_ms, "max": 90.0},
        }

    return {
        "burst": {
            "400": {
                "roomcast": {"cpu_us_per_delivery": roomcast_cpu, "deliveries_per_s": 200_000.0,
                             "lost": 0, "duplicated": 0},
                "node_ws": {"cpu_us_per_delivery": node_cpu, "deliveries_per_s": 100_000.0},
            }
        },
        "idle": {"400": {"roomcast": {"rss_per_connection_bytes": 12_000}}},
        "handshake": {"400": {"roomcast": {"failed": 0, "handshakes_per_s": 3000.0}}},
        "sustained": {"400": {"roomcast": [point(p99, 0)], "node_ws": [point(100.0, 0)]}},
    }  # fmt: skip


def test_ratios_and_target_verdicts_from_a_run() -> None:
    scenarios = _scenarios(roomcast_cpu=4.0, node_cpu=10.0, p99=40.0)
    ratios = ratios_vs(scenarios, "node_ws")
    assert ratios["burst"]["400"] == {"cpu_us_per_delivery": 0.4, "deliveries_per_s": 2.0}
    assert ratios["sustained"]["400"]["50000"]["latency_p99"] == 0.4
    verdicts = {v.name: v for v in targets(scenarios, QUICK)}
    assert verdicts["cpu_per_delivery_vs_node_ws"].met is True
    assert verdicts["p99_at_50k_deliveries_per_s"].met is True
    assert verdicts["rss_per_idle_connection"].met is False
    assert verdicts["nothing_lost"].met is True


def test_a_loss_anywhere_fails_the_nothing_lost_target() -> None:
    scenarios = _scenarios(roomcast_cpu=12.0, node_cpu=10.0, p99=80.0)
    scenarios["sustained"]["400"]["roomcast"][0]["lost"] = 3
    verdicts = {v.name: v for v in targets(scenarios, QUICK)}
    assert verdicts["nothing_lost"].met is False
    assert verdicts["cpu_per_delivery_vs_node_ws"].met is False
    assert verdicts["p99_at_50k_deliveries_per_s"].met is False


def test_readme_table_replaces_only_the_marked_section(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# title\n<!-- results:start -->\nold\n<!-- results:end -->\ntail\n")
    assert update_readme(readme, "| new |")
    assert (
        readme.read_text()
        == "# title\n<!-- results:start -->\n| new |\n<!-- results:end -->\ntail\n"
    )
    unmarked = tmp_path / "OTHER.md"
    unmarked.write_text("no markers\n")
    assert not update_readme(unmarked, "| new |")
    assert unmarked.read_text() == "no markers\n"


def test_readme_table_lists_every_server_and_target() -> None:
    results = {
        "plan": {"name": "quick", "connections": [400]},
        "servers": ["roomcast", "node_ws"],
        "scenarios": _scenarios(4.0, 10.0, 40.0),
        "targets": [v.as_dict() for v in targets(_scenarios(4.0, 10.0, 40.0), QUICK)],
        "machine": {"cpus": 2, "server_cores": [0], "load_cores": [1], "python": "3.11",
                    "node": "v20"},
        "commit": "abc", "generated_at": "now", "feeds": {"roomcast": "publisher"},
    }  # fmt: skip
    table = readme_table(json.loads(json.dumps(results)))
    assert "| 400 | roomcast | 200,000 | 4 |" in table
    assert "| 400 | node_ws | 100,000 | 10 |" in table
    assert "**not met**" in table  # the RSS target
