"""`python -m bench.latency [--plan quick|smoke]`: end-to-end latency at low load through
the publisher against the same feed produced straight to Kafka.

One edge, one Kafka, one Redis and one publisher; C clients on the bench topic; R
messages/s for a few seconds per round, the feeds taking turns round after round so
that the machine's load drifts alike for all of them:

- `kafka_direct`: records in the wire format produced straight to Kafka (the driver's
  producer, acks=all), receive_time stamped just before producing;
- `publisher`: POST /v1/messages(/batch) with a message_id, as the main benchmark does;
- `publisher_no_id`: the same without message_id (no idempotency claim before the
  produce).

Latency is publish-to-deliver from meta.receive_time, which the publisher stamps when
it takes the request and the direct feed when it produces: the gap between the feeds
is the publisher's own path (claim, hand-over to its producer, the producer's send)
plus anything the records' arrival pattern changes downstream. Results go into
`results/latency.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench import scenarios
from bench.feeds import Feed, KafkaFeed, PublisherFeed
from bench.loadgen import LoadGenerator
from bench.plan import max_connections
from bench.runner import SETTLE_SECONDS, mint_tokens, roomcast_infra
from bench.servers import start_edge
from bench.system import cores, placement, raise_nofile_limit

RESULTS = Path(__file__).resolve().parent / "results" / "latency.json"
TARGET_GAP_MS = 2.0
Log = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class LatencyPlan:
    name: str
    connections: int
    messages_per_s: float
    seconds: float  # per round and feed
    rounds: int


PLANS = {
    plan.name: plan
    for plan in (
        LatencyPlan("quick", 400, 125.0, 4.0, 3),
        LatencyPlan("smoke", 20, 20.0, 1.0, 1),
    )
}


class NoIdFeed:
    """The publisher feed without message_id: no idempotency claim on the way."""

    name = "publisher-no-id"

    def __init__(self, inner: Feed) -> None:
        self._inner = inner

    async def publish(self, requests: Sequence[dict[str, Any]]) -> None:
        await self._inner.publish(
            [{k: v for k, v in r.items() if k != "message_id"} for r in requests]
        )


async def measure(plan: LatencyPlan, workdir: Path, log: Log) -> dict[str, Any]:
    nofile = raise_nofile_limit()
    connections = min(plan.connections, max_connections(nofile))
    place = placement(cores())
    tokens = await asyncio.to_thread(mint_tokens, connections)
    timeout = aiohttp.ClientTimeout(total=120)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        roomcast_infra(workdir, place, session, "publisher", log) as infra,
    ):
        if infra.publisher is None:
            raise RuntimeError(f"the publisher did not start: {infra.notes}")
        assert infra.producer is not None
        feeds: dict[str, Feed] = {
            "kafka_direct": KafkaFeed(infra.producer, infra.topic),
            "publisher": PublisherFeed(session, infra.publisher.url),
            "publisher_no_id": NoIdFeed(PublisherFeed(session, infra.publisher.url)),
        }
        cpus = place.server if place.pinned else None
        edge = await asyncio.to_thread(start_edge, workdir, cpus, infra.env)
        points: dict[str, list[dict[str, Any]]] = {name: [] for name in feeds}
        try:
            with LoadGenerator(2, place.load if place.pinned else None) as load:
                target = scenarios.Target("roomcast", edge.pid, feeds["kafka_direct"])
                await asyncio.sleep(SETTLE_SECONDS)
                opened = await scenarios.handshakes(load, target, edge.dials(tokens))
                log(f"{opened['opened']} clients connected")
                # a first, unmeasured round: connections, producers and JIT-less caches warm
                for name, feed in feeds.items():
                    target = scenarios.Target("roomcast", edge.pid, feed)
                    await scenarios.sustained(
                        load, target, connections, plan.messages_per_s, 1.0, f"w-{name}"
                    )
                for round_ in range(plan.rounds):
                    for name, feed in feeds.items():
                        # the edge's /metrics split each latency into its side and the rest
                        target = scenarios.Target(
                            "roomcast", edge.pid, feed, edge.base_url + "/metrics", session
                        )
                        run_id = f"{name}-{round_}-{uuid.uuid4().hex[:6]}"
                        before = await produce_seconds(session, infra.publisher.url)
                        point = await scenarios.sustained(
                            load, target, connections, plan.messages_per_s, plan.seconds, run_id
                        )
                        after = await produce_seconds(session, infra.publisher.url)
                        if after[1] > before[1]:
                            # hand-over to acknowledgement inside the publisher, per request
                            point["publisher_produce_ms"] = round(
                                (after[0] - before[0]) / (after[1] - before[1]) * 1000, 2
                            )
                        points[name].append(point)
                        log(f"round {round_} {name}: latency {point.get('latency_ms')}")
                await load.close()
        finally:
            await asyncio.to_thread(edge.stop)
    return summarize(plan, connections, points)


async def produce_seconds(session: aiohttp.ClientSession, url: str) -> tuple[float, float]:
    """The publisher's produce_seconds histogram: (sum, count)."""
    async with session.get(url + "/metrics") as response:
        text = await response.text()
    values = {"sum": 0.0, "count": 0.0}
    for line in text.splitlines():
        for part in values:
            if line.startswith(f"roomcast_publisher_produce_seconds_{part} "):
                values[part] = float(line.split()[1])
    return values["sum"], values["count"]


def summarize(
    plan: LatencyPlan, connections: int, points: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    feeds: dict[str, Any] = {}
    for name, rounds in points.items():
        p50s = [p["latency_ms"]["p50"] for p in rounds if p.get("latency_ms")]
        p99s = [p["latency_ms"]["p99"] for p in rounds if p.get("latency_ms")]
        feeds[name] = {
            "p50_ms_per_round": p50s,
            "p99_ms_per_round": p99s,
            "edge_side_ms_per_round": [p.get("server_side_latency_ms") for p in rounds],
            "publisher_produce_ms_per_round": [p.get("publisher_produce_ms") for p in rounds],
            "p50_ms_median": statistics.median(p50s) if p50s else None,
            "p99_ms_median": statistics.median(p99s) if p99s else None,
            "delivered": sum(p.get("delivered", 0) for p in rounds),
            "expected": sum(p.get("expected", 0) for p in rounds),
        }
    direct = feeds["kafka_direct"]["p50_ms_median"]
    gaps = {
        name: round(feeds[name]["p50_ms_median"] - direct, 2)
        for name in ("publisher", "publisher_no_id")
        if direct is not None and feeds[name]["p50_ms_median"] is not None
    }
    return {
        "plan": plan.name,
        "connections": connections,
        "messages_per_s": plan.messages_per_s,
        "seconds_per_round": plan.seconds,
        "rounds": plan.rounds,
        "feeds": feeds,
        "p50_gap_vs_direct_ms": gaps,
        "target_gap_ms": TARGET_GAP_MS,
        "target_met": bool(gaps) and all(gap <= TARGET_GAP_MS for gap in gaps.values()),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__)
    parser.add_argument("--plan", choices=sorted(PLANS), default="quick")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    def log(line: str) -> None:
        print(f"bench latency: {line}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="roomcast-latency-") as tmp:
        result = asyncio.run(measure(PLANS[args.plan], Path(tmp), log))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    for name, feed in result["feeds"].items():
        print(
            f"latency {name:16} p50 {feed['p50_ms_median']} ms (rounds {feed['p50_ms_per_round']})"
            f"  p99 {feed['p99_ms_median']} ms  delivered {feed['delivered']}/{feed['expected']}"
        )
    print(f"p50 gap vs kafka_direct: {result['p50_gap_vs_direct_ms']} (target <= {TARGET_GAP_MS})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
