"""The publisher benchmark's tooling at a tiny size: every message counted, anchors run.

Asserts on counts and on the shape of the results (ratios present, targets judged),
never on speed.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.publisher import (
    PLANS,
    RESULT_KEY,
    bench_request,
    measure,
    parse_producer_performance,
    summarize,
    write,
)

SMOKE = PLANS["smoke"]


async def test_a_tiny_publisher_run_counts_every_message(
    tmp_path: Path, redis_url: str, kafka_bootstrap: str
) -> None:
    results = await measure(
        SMOKE, tmp_path, lambda _: None, redis_url=redis_url, bootstrap=kafka_bootstrap
    )
    assert results["errors"] == {}
    scenarios = results["scenarios"]
    for tag in ("with_id", "without_id"):
        single = scenarios[f"single_{tag}"]
        assert single["statuses"] == {"202": SMOKE.singles}
        assert single["acked"] == single["records_landed"] == SMOKE.singles
        for size, count in SMOKE.batches.items():
            batch = scenarios[f"batch_{size}_{tag}"]
            assert batch["statuses"] == {"202": count}
            assert batch["acked"] == batch["records_landed"] == size * count
    assert scenarios["bare_http"]["acked"] == SMOKE.singles
    assert scenarios["bare_aiokafka"]["acked"] == SMOKE.bare_records
    assert scenarios["producer_performance"]["records"] == SMOKE.bare_records
    throughput = {"vs_bare_aiokafka", "vs_producer_performance", "vs_bare_http"}
    for name, ratios in results["ratios"].items():
        assert set(ratios) == throughput | {"cpu_vs_bare_aiokafka", "cpu_vs_bare_http"}
        assert all(ratios[k] is not None and ratios[k] > 0 for k in throughput), name
    assert len(results["targets"]) == 2 + 2 * len(SMOKE.batches)
    assert all(t["met"] in (True, False) for t in results["targets"])


def test_results_merge_into_the_fanout_document(tmp_path: Path) -> None:
    (tmp_path / "quick.json").write_text(json.dumps({"scenarios": {"burst": {}}}))
    results = summarize(
        SMOKE,
        {
            "single_with_id": {"acked_per_s": 3000.0, "acked": 10, "records_landed": 10},
            "batch_100_with_id": {"acked_per_s": 9000.0, "acked": 10, "records_landed": 9},
            "bare_http": {"acked_per_s": 6000.0},
            "bare_aiokafka": {"acked_per_s": 10000.0},
            "producer_performance": {"acked_per_s": 20000.0},
        },
        {},
    )
    assert results["ratios"]["single_with_id"] == {
        "vs_bare_aiokafka": 0.3,
        "vs_producer_performance": 0.15,
        "vs_bare_http": 0.5,
        "cpu_vs_bare_aiokafka": None,  # CPU was not measured in these figures
        "cpu_vs_bare_http": None,
    }
    verdicts = {t["name"]: t for t in results["targets"]}
    assert verdicts["publisher_single_with_id"]["met"] is False  # 0.5 x bare_http
    assert verdicts["publisher_batch_100_with_id"]["met"] is True  # 0.9 x bare_aiokafka
    # fewer records in Kafka than acknowledged is a lie the run reports
    assert "batch_100_with_id" in results["errors"]

    path = write(results, tmp_path, "quick")
    document = json.loads(path.read_text())
    assert document["scenarios"] == {"burst": {}}  # the fan-out results stay
    assert document[RESULT_KEY]["ratios"] == results["ratios"]


def test_producer_performance_summary_line_is_read() -> None:
    output = (
        "50000 records sent, 49950.0 records/sec (9.53 MB/sec), 5.1 ms avg latency.\n"
        "120000 records sent, 123456.7 records/sec (23.55 MB/sec), 180.20 ms avg latency, "
        "400.00 ms max latency, 170 ms 50th, 300 ms 95th, 390 ms 99th, 399 ms 99.9th.\n"
    )
    assert parse_producer_performance(output) == (120000, 123456.7)
    assert parse_producer_performance("nothing useful") is None


def test_bench_messages_spread_over_rooms_and_name_themselves_only_when_asked() -> None:
    with_id = [bench_request("r", n, with_id=True) for n in range(200)]
    assert len({m["room"] for m in with_id}) > 3
    assert len({m["message_id"] for m in with_id}) == 200
    assert "message_id" not in bench_request("r", 1, with_id=False)
