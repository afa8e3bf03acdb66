"""The `ticks` workload's pure parts and the Centrifugo comparison's report fields."""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from bench.loadgen import Dial, LoadGenerator, centrifugo_commands
from bench.messages import centrifugo_sent_time, ticks_request, wire_record
from bench.peers import centrifugo
from bench.plan import FULL, QUICK
from bench.report import (
    centrifugo_targets,
    ratios_vs,
    readme_table,
    ticks_lines,
    ticks_vs,
    write_outputs,
)
from bench.stats import at_least

from bench import scenarios, system, ticks
from roomcast_core import wire

SPEC = ticks.TicksSpec(topics=50, clients=40, per_client=5, rates=(100.0, 200.0), step_seconds=1.0)


def test_every_server_gets_the_same_subscriptions_and_feed() -> None:
    subs = ticks.subscriptions(SPEC)
    assert subs == ticks.subscriptions(SPEC)
    assert len(subs) == SPEC.clients
    assert all(len(set(pairs)) == 5 for pairs in subs)
    assert all(0 <= p < SPEC.pairs for pairs in subs for p in pairs)
    other_seed = ticks.subscriptions(ticks.TicksSpec(50, 40, 5, (100.0,), 1.0, seed=7))
    assert other_seed != subs
    sequence = ticks.feed_sequence(SPEC, 0, 1000)
    assert sequence == ticks.feed_sequence(SPEC, 0, 1000)
    assert sequence != ticks.feed_sequence(SPEC, 1, 1000)
    # spread over the pairs, not stuck on a few
    assert len(Counter(sequence)) > SPEC.pairs * 0.9


def test_pairs_name_topics_and_types() -> None:
    assert SPEC.pairs == 200
    assert ticks.pair_of(SPEC, 0) == ("t0000", "trade")
    assert ticks.pair_of(SPEC, 5) == ("t0001", "quote")
    assert ticks.pair_of(SPEC, 199) == ("t0049", "stats")
    assert FULL.ticks is not None
    assert (FULL.ticks.pairs, FULL.ticks.clients, FULL.ticks.per_client) == (4000, 5000, 5)
    assert FULL.ticks.rates[0] == 2000
    assert QUICK.ticks is not None
    assert QUICK.ticks_servers == ("roomcast", "roomcast_redis", "centrifugo")


def test_expected_deliveries_follow_subscriptions() -> None:
    subs = [(0, 1), (1, 2), (3,)]
    assert ticks.expected_per_client(subs, [1, 1, 2, 0, 7]) == [3, 3, 0]


def test_losses_count_short_long_and_missing_clients() -> None:
    loss = ticks.losses({0: 3, 1: 5, 3: 1}, [3, 4, 2, 1])
    assert (loss.expected, loss.received) == (10, 9)
    assert loss.lost == 2  # client 2 never connected
    assert loss.duplicated == 1


def test_the_schedule_reaches_the_total_at_the_step_end_and_no_further() -> None:
    assert ticks.schedule(1000.0, 2.0, 0.0) == 1
    assert ticks.schedule(1000.0, 2.0, 0.5) == 501
    assert ticks.schedule(1000.0, 2.0, 5.0) == 2000


class _CountingLoad:
    """Delivers every published message at once to the clients subscribed to its pair."""

    def __init__(self, subs: list[tuple[int, ...]], spec: ticks.TicksSpec) -> None:
        self.delivered = 0
        self.resets = 0
        self._per_pair = Counter(p for pairs in subs for p in pairs)
        self._pairs = {ticks.pair_of(spec, p): p for p in range(spec.pairs)}

    def deliver(self, requests: Sequence[dict[str, Any]]) -> None:
        for request in requests:
            pair = self._pairs[(request["topic"], request["type"])]
            self.delivered += self._per_pair.get(pair, 0)

    async def reset(self) -> None:
        self.resets += 1
        self.delivered = 0

    async def progress(self) -> tuple[int, float]:
        return self.delivered, 0.0


class _RecordingFeed:
    name = "recording"

    def __init__(self, load: _CountingLoad) -> None:
        self.load = load
        self.requests: list[dict[str, Any]] = []

    async def publish(self, requests: Sequence[dict[str, Any]]) -> None:
        self.requests.extend(requests)
        self.load.deliver(requests)


def _warm(spec: ticks.TicksSpec) -> tuple[dict[str, Any] | None, _CountingLoad, _RecordingFeed]:
    subs = ticks.subscriptions(spec)
    load = _CountingLoad(subs, spec)
    feed = _RecordingFeed(load)
    target = scenarios.Target(name="s", pid=os.getpid(), feed=feed)
    warmup = asyncio.run(
        scenarios.ticks_warmup(cast(LoadGenerator, load), target, spec, subs, "run", tick=0.001)
    )
    return warmup, load, feed


def test_the_warmup_feeds_the_first_rate_unmeasured_and_leaves_the_counts_empty() -> None:
    spec = replace(SPEC, warmup_seconds=0.2)
    warmup, load, feed = _warm(spec)
    assert warmup is not None
    assert warmup["messages"] == len(feed.requests) == 20  # 100 msg/s x 0.2 s
    assert warmup["delivered"] == warmup["expected"] > 0
    # the first measured step starts from zero, with a sequence of its own
    assert load.delivered == 0
    assert load.resets == 2
    step0 = ticks.feed_sequence(spec, 0, 20)
    warm_pairs = [ticks.pair_of(spec, p) for p in ticks.feed_sequence(spec, ticks.WARMUP_STEP, 20)]
    assert [(r["topic"], r["type"]) for r in feed.requests] == warm_pairs
    assert warm_pairs != [ticks.pair_of(spec, p) for p in step0]


def test_no_warmup_unless_the_plan_asks_and_the_plans_do() -> None:
    warmup, load, feed = _warm(SPEC)
    assert warmup is None
    assert feed.requests == []
    assert load.resets == 0
    assert FULL.ticks is not None
    assert FULL.ticks.warmup_seconds > 0
    assert QUICK.ticks is not None
    assert QUICK.ticks.warmup_seconds > 0
    assert FULL.ticks.as_dict()["warmup_seconds"] == FULL.ticks.warmup_seconds


def _step(
    rate: float, offered: float, p99: float, lost: int = 0, drain: float = 0.1
) -> dict[str, Any]:
    return {
        "rate": rate,
        "offered_per_s": offered,
        "delivered_per_s": offered * 6,
        "lost": lost,
        "duplicated": 0,
        "drain_seconds": drain,
        "cpu_us_per_message": 30.0,
        "cpu_us_per_delivery": 5.0,
        "latency_ms": {"p50": p99 / 3, "p99": p99, "max": p99 * 1.5},
    }


def test_the_ladder_stops_where_the_server_falls_behind() -> None:
    steps = [_step(2000, 2000, 20), _step(5000, 4990, 80), _step(10000, 9950, 4000)]
    assert not ticks.is_behind(steps[1])
    assert ticks.is_behind(steps[2])
    assert ticks.is_behind(_step(100, 100, 5, lost=1))
    assert ticks.is_behind(_step(100, 100, 5, drain=9.0))
    ceiling = ticks.ingest_ceiling(steps)
    assert ceiling == {"messages_per_s": 4990, "stopped": "behind at 10000 msg/s",
                       "lower_bound": False}  # fmt: skip


def test_a_feed_that_cannot_offer_the_rate_makes_the_ceiling_a_lower_bound() -> None:
    steps = [_step(2000, 2000, 20), _step(5000, 3000, 30)]
    assert ticks.feed_limited(steps[1])
    ceiling = ticks.ingest_ceiling(steps)
    assert ceiling["messages_per_s"] == 3000
    assert ceiling["lower_bound"] is True
    assert "feed could not offer" in ceiling["stopped"]


def test_centrifugo_commands_connect_then_subscribe_each_channel() -> None:
    connect, subscribes = centrifugo_commands(Dial("ws://x", 3, "tok", ("a.trade", "b.quote")))
    assert orjson.loads(connect) == {"id": 1, "connect": {"token": "tok"}}
    lines = [orjson.loads(line) for line in subscribes.split(b"\n")]
    assert lines == [
        {"id": 2, "subscribe": {"channel": "a.trade"}},
        {"id": 3, "subscribe": {"channel": "b.quote"}},
    ]


def test_a_centrifugo_push_carries_the_wire_record_and_its_send_time() -> None:
    request = ticks_request("run", 4, "t0001", "book")
    record = wire_record(request, "2025-08-06T14:20:00.123Z")
    push = orjson.dumps({"push": {"channel": "t0001.book", "pub": {"data": record}}})
    assert centrifugo_sent_time(push) == pytest.approx(wire.parse_time("2025-08-06T14:20:00.123Z"))
    assert 180 <= len(wire.encode_value(wire.decode_value(orjson.dumps(record)))) <= 260
    for other in (b"{}", b'{"id": 1, "connect": {}}', b"nope", b'{"push": {"pub": {"data": 1}}}'):
        assert centrifugo_sent_time(other) is None


def test_centrifugo_config_reads_kafka_in_publication_data_mode() -> None:
    source = centrifugo.KafkaSource("127.0.0.1:9092", "bench-x", "group-x")
    document = centrifugo.config(8123, "s3cret", "key", source)
    assert document["client"]["token"]["hmac_secret_key"] == "s3cret"
    assert document["engine"]["type"] == "memory"
    (consumer,) = document["consumers"]
    assert consumer["type"] == "kafka"
    assert consumer["kafka"]["topics"] == ["bench-x"]
    assert consumer["kafka"]["publication_data_mode"] == {"enabled": True}
    assert "websocket" not in document
    low = centrifugo.config(8123, "s3cret", "key", None, low_memory=True)
    assert low["websocket"]["use_write_buffer_pool"] is True
    assert low["websocket"]["read_buffer_size"] < 4096
    assert "consumers" not in low


def _ticks_entry(p99s: list[float], ceiling: float) -> dict[str, Any]:
    steps = [_step(r, r, p) for r, p in zip((2000.0, 5000.0, 10000.0), p99s, strict=False)]
    return {"steps": steps, "ceiling": {"messages_per_s": ceiling}}


def _results() -> dict[str, Any]:
    scenarios: dict[str, Any] = {
        "handshake": {
            "1000": {"roomcast": {"cpu_us_per_handshake": 300.0, "handshakes_per_s": 2000.0},
                     "centrifugo": {"cpu_us_per_handshake": 200.0, "handshakes_per_s": 3000.0}},
        },
        "burst": {
            "1000": {"roomcast": {"cpu_us_per_delivery": 1.0, "deliveries_per_s": 300_000.0},
                     "centrifugo": {"cpu_us_per_delivery": 4.0, "deliveries_per_s": 200_000.0}},
        },
        "idle": {
            "1000": {"roomcast": {"rss_per_connection_bytes": 3000},
                     "centrifugo_lowmem": {"rss_per_connection_bytes": 26000}},
        },
        "ticks": {
            "5000": {"roomcast": _ticks_entry([100.0, 300.0, 900.0], 10000.0),
                     "centrifugo": _ticks_entry([50.0, 100.0], 5000.0)},
        },
    }  # fmt: skip
    results = {
        "scenarios": scenarios,
        "servers": ["roomcast", "centrifugo", "centrifugo_lowmem"],
        "plan": {"name": "full", "connections": [1000]},
        "targets": [],
        "machine": {"cpus": 2, "server_cores": [0], "load_cores": [1], "python": "3.11",
                    "node": "v20"},
        "commit": "abc", "generated_at": "now", "feeds": {"roomcast": "publisher"},
    }  # fmt: skip
    for peer in ("centrifugo", "centrifugo_lowmem"):
        results[f"ratio_vs_{peer}"] = ratios_vs(scenarios, peer)
    return results


def test_ratios_vs_centrifugo_cover_ticks_steps_and_the_ceiling() -> None:
    results = _results()
    vs = results["ratio_vs_centrifugo"]
    assert vs["burst"]["1000"]["cpu_us_per_delivery"] == 0.25
    assert vs["handshake"]["1000"]["cpu_us_per_handshake"] == 1.5
    ticks_ratios = vs["ticks"]["5000"]
    assert ticks_ratios["ingest_ceiling"] == 2.0
    assert set(ticks_ratios["steps"]) == {"2000", "5000"}  # only steps both servers ran
    assert ticks_ratios["steps"]["5000"]["latency_p99"] == 3.0
    assert ticks_vs(None, {"steps": []}) is None


def test_centrifugo_targets_say_met_or_how_far() -> None:
    results = _results()
    plan = FULL.within(1500)
    verdicts = {v.name: v for v in centrifugo_targets(results, plan)}
    assert verdicts["handshake_cpu_vs_centrifugo"].met is False
    assert verdicts["burst_rate_vs_centrifugo"].met is True
    assert verdicts["burst_cpu_vs_centrifugo"].met is True
    assert verdicts["idle_rss_vs_centrifugo_lowmem"].measured == pytest.approx(0.115)
    assert verdicts["idle_rss_vs_centrifugo_lowmem"].met is True
    assert verdicts["ticks_ceiling_vs_centrifugo"].met is True
    assert verdicts["ticks_p99_vs_centrifugo"].measured == 3.0
    assert verdicts["ticks_p99_vs_centrifugo"].met is False
    short = at_least("x", "x >= 1", 0.8, 1.0, "x")
    assert short.met is False
    assert "short" in short.gap


def test_ticks_table_and_summary_list_every_server_step() -> None:
    results = json.loads(json.dumps(_results()))
    table = readme_table(results)
    assert "| ticks C=5000 |" in table
    assert "| 10,000 | roomcast |" in table
    assert "| 5,000 | centrifugo |" in table
    assert "Ingest ceilings: roomcast 10,000 msg/s" in table
    lines = ticks_lines(results)
    assert sum("ingest ceiling" in line for line in lines) == 2


def test_a_run_keeps_other_benchmarks_sections_of_its_results_file(tmp_path: Path) -> None:
    out = tmp_path / "results"
    out.mkdir()
    (out / "smoke.json").write_text(
        json.dumps({"publisher_anchors": {"x": 1}, "scenarios": {"old": 1}, "notes": ["old"]})
    )
    results: dict[str, Any] = {"plan": {"name": "smoke"}, "scenarios": {}, "notes": []}
    write_outputs(results, out)
    saved = json.loads((out / "smoke.json").read_text())
    assert saved == {"publisher_anchors": {"x": 1}, "plan": {"name": "smoke"},
                     "scenarios": {}, "notes": []}  # fmt: skip


def test_runqueue_wait_reads_the_schedstat_wait_field() -> None:
    assert system.parse_schedstat("123456789 2500000000 42\n") == 2.5
    waited = system.runqueue_wait(os.getpid())
    assert waited >= 0.0
    # summed over threads, each at least what the main thread alone waited
    main = system.parse_schedstat(Path(f"/proc/{os.getpid()}/schedstat").read_text())
    assert waited >= main - 1e-9
