"""The measurements: handshakes, idle memory, burst, sustained, ticks, publisher throughput.

Server CPU is always the server process's own accounting (/proc/<pid>/stat, all threads,
user + kernel) over the scenario's window, divided by what it did in that window.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench import ticks
from bench.feeds import Feed
from bench.loadgen import Dial, LoadGenerator
from bench.messages import publish_request, ticks_request
from bench.promtext import bucket_delta, histogram_buckets, quantile_upper_bound
from bench.stats import Delivery, Latency, micros_per, rate
from bench.system import CpuTimes, cpu_times, runqueue_wait


@dataclass(frozen=True, slots=True)
class Target:
    """A running server as the scenarios see it."""

    name: str
    pid: int
    feed: Feed
    # roomcast's edge: /metrics, to split its latency into server-side and the rest
    metrics_url: str | None = None
    session: aiohttp.ClientSession | None = None


LAG_HISTOGRAM = "roomcast_edge_publish_to_deliver_seconds"


async def _lag_buckets(target: Target) -> dict[float, float] | None:
    if target.metrics_url is None or target.session is None:
        return None
    try:
        async with target.session.get(target.metrics_url) as response:
            return histogram_buckets(await response.text(), LAG_HISTOGRAM)
    except aiohttp.ClientError:
        return None


def _server_side(
    before: dict[float, float] | None, after: dict[float, float] | None
) -> dict[str, Any] | None:
    """Bucket upper bounds (ms) of the edge's own receive_time -> fan-out percentiles."""
    if before is None or after is None:
        return None
    delta = bucket_delta(after, before)
    out: dict[str, Any] = {}
    for name, fraction in (("p50_le", 0.5), ("p99_le", 0.99)):
        bound = quantile_upper_bound(delta, fraction)
        out[name] = None if bound is None or bound == float("inf") else bound * 1000
    return out


def _cpu(delta: CpuTimes, count: int) -> dict[str, Any]:
    return {
        "cpu_us": micros_per(delta.total, count),
        "kernel_share": round(delta.system / delta.total, 3) if delta.total > 0 else None,
    }


async def handshakes(
    load: LoadGenerator, target: Target, urls: Sequence[str | Dial], protocol: str = "roomcast"
) -> dict[str, Any]:
    """Open every connection as fast as the clients can; JWT checks included."""
    before = cpu_times(target.pid)
    result = await load.connect(urls, protocol=protocol)
    delta = cpu_times(target.pid) - before
    seconds = result["finished"] - result["started"]
    cpu = _cpu(delta, result["opened"])
    return {
        "connections": len(urls),
        "opened": result["opened"],
        "failed": result["failed"],
        "errors": result["errors"],
        "seconds": round(seconds, 3),
        "handshakes_per_s": rate(result["opened"], seconds),
        "cpu_us_per_handshake": cpu["cpu_us"],
    }


def idle_memory(rss_before: int, rss_after: int, connections: int) -> dict[str, Any]:
    return {
        "rss_before_bytes": rss_before,
        "rss_after_bytes": rss_after,
        "rss_per_connection_bytes": round((rss_after - rss_before) / connections)
        if connections
        else None,
    }


async def wait_for_deliveries(
    load: LoadGenerator, expected: int, quiet: float, cap: float
) -> tuple[int, float]:
    """Until every delivery arrived, nothing arrived for `quiet` seconds, or `cap` passed."""
    deadline = time.monotonic() + cap
    last_count, last_change = -1, time.monotonic()
    while True:
        count, last_delivery = await load.progress()
        now = time.monotonic()
        if count >= expected or now > deadline:
            return count, last_delivery
        if count != last_count:
            last_count, last_change = count, now
        elif now - last_change > quiet:
            return count, last_delivery
        await asyncio.sleep(0.1)


async def burst(
    load: LoadGenerator,
    target: Target,
    connections: int,
    messages: int,
    run_id: str,
    quiet: float = 5.0,
    cap: float = 120.0,
) -> dict[str, Any]:
    """M messages published at once; deliveries/s and server CPU per delivery."""
    await load.reset()
    requests = [publish_request(run_id, seq) for seq in range(messages)]
    before = cpu_times(target.pid)
    started = time.time()
    await target.feed.publish(requests)
    await wait_for_deliveries(load, connections * messages, quiet, cap)
    delta = cpu_times(target.pid) - before
    stats = await load.stats()
    delivery = Delivery.of(stats.counts, messages, connections)
    seconds = (stats.last_delivery - started) if delivery.received else 0.0
    cpu = _cpu(delta, delivery.received)
    latency = Latency.of(stats.latencies)
    return {
        "connections": connections,
        "messages": messages,
        "expected": delivery.expected,
        "delivered": delivery.received,
        "lost": delivery.lost,
        "duplicated": delivery.duplicated,
        "closed_during": stats.closed,
        "seconds": round(seconds, 3),
        "deliveries_per_s": rate(delivery.received, seconds),
        "cpu_us_per_delivery": cpu["cpu_us"],
        "kernel_share": cpu["kernel_share"],
        "latency_ms": None if latency is None else _latency_dict(latency),
    }


def _latency_dict(latency: Latency) -> dict[str, float]:
    return {
        "count": latency.count,
        "p50": latency.p50,
        "p90": latency.p90,
        "p99": latency.p99,
        "max": latency.max,
    }


async def sustained(
    load: LoadGenerator,
    target: Target,
    connections: int,
    messages_per_s: float,
    seconds: float,
    run_id: str,
    tick: float = 0.02,
) -> dict[str, Any]:
    """R messages/s for a fixed time; publish-to-deliver latency from meta.receive_time."""
    await load.reset()
    lag_before = await _lag_buckets(target)
    total = max(1, round(messages_per_s * seconds))
    sends: list[asyncio.Task[None]] = []
    before = cpu_times(target.pid)
    load_before = load.cpu_seconds()
    started = time.monotonic()
    sent = 0
    while sent < total:
        due = min(total, int((time.monotonic() - started) * messages_per_s) + 1)
        if due > sent:
            batch = [publish_request(run_id, seq) for seq in range(sent, due)]
            # Not awaited here: a slow server must not slow the offered rate down.
            sends.append(asyncio.create_task(target.feed.publish(batch)))
            sent = due
        await asyncio.sleep(tick)
    await asyncio.gather(*sends)
    await wait_for_deliveries(load, connections * total, quiet=5.0, cap=60.0)
    delta = cpu_times(target.pid) - before
    # The clients' own CPU over the step: near 1.0 per load core means they, not the
    # server, set the latency.
    load_cpu = load.cpu_seconds() - load_before
    elapsed = time.monotonic() - started
    lag_after = await _lag_buckets(target)
    stats = await load.stats()
    delivery = Delivery.of(stats.counts, total, connections)
    latency = Latency.of(stats.latencies)
    cpu = _cpu(delta, delivery.received)
    return {
        "server_side_latency_ms": _server_side(lag_before, lag_after),
        "connections": connections,
        "messages_per_s": messages_per_s,
        "offered_deliveries_per_s": round(messages_per_s * connections, 1),
        "seconds": seconds,
        "messages": total,
        "expected": delivery.expected,
        "delivered": delivery.received,
        "lost": delivery.lost,
        "duplicated": delivery.duplicated,
        "cpu_us_per_delivery": cpu["cpu_us"],
        "kernel_share": cpu["kernel_share"],
        "server_cpu_share": round(delta.total / elapsed, 3) if elapsed > 0 else None,
        "load_cpu_share": round(load_cpu / elapsed, 3) if elapsed > 0 else None,
        "latency_ms": None if latency is None else _latency_dict(latency),
    }


async def _feed_ticks(
    target: Target,
    spec: ticks.TicksSpec,
    sequence: Sequence[int],
    rate_per_s: float,
    seconds: float,
    run_id: str,
    tick: float,
) -> float:
    """Publish `sequence` at `rate_per_s` over `seconds`; the seconds it took to offer."""
    total = len(sequence)
    started = time.monotonic()
    sends: list[asyncio.Task[None]] = []
    sent = 0
    while sent < total:
        due = ticks.schedule(rate_per_s, seconds, time.monotonic() - started)
        if due > sent:
            batch = [
                ticks_request(run_id, seq, *ticks.pair_of(spec, sequence[seq]))
                for seq in range(sent, due)
            ]
            # Not awaited here: a slow server must not slow the offered rate down.
            sends.append(asyncio.create_task(target.feed.publish(batch)))
            sent = due
        await asyncio.sleep(tick)
    await asyncio.gather(*sends)
    return time.monotonic() - started


async def ticks_warmup(
    load: LoadGenerator,
    target: Target,
    spec: ticks.TicksSpec,
    subs: Sequence[tuple[int, ...]],
    run_id: str,
    tick: float = 0.01,
) -> dict[str, Any] | None:
    """The unmeasured step before the ladder: the first rate for `spec.warmup_seconds`.

    Waits until its deliveries are in (or stopped coming) so that nothing of it spills
    into the first measured step; what it counted is only logged.
    """
    if spec.warmup_seconds <= 0 or not spec.rates:
        return None
    await load.reset()
    rate_per_s = spec.rates[0]
    total = max(1, round(rate_per_s * spec.warmup_seconds))
    sequence = ticks.feed_sequence(spec, ticks.WARMUP_STEP, total)
    expected = sum(ticks.expected_per_client(subs, sequence))
    fed_seconds = await _feed_ticks(
        target, spec, sequence, rate_per_s, spec.warmup_seconds, run_id, tick
    )
    delivered, _ = await wait_for_deliveries(load, expected, quiet=3.0, cap=30.0)
    await load.reset()
    return {
        "rate": rate_per_s,
        "messages": total,
        "offered_per_s": rate(total, fed_seconds),
        "expected": expected,
        "delivered": delivered,
    }


async def ticks_step(
    load: LoadGenerator,
    target: Target,
    spec: ticks.TicksSpec,
    subs: Sequence[tuple[int, ...]],
    step: int,
    rate_per_s: float,
    run_id: str,
    tick: float = 0.01,
) -> dict[str, Any]:
    """One step of the `ticks` feed: `rate_per_s` messages/s spread over every topic:type pair.

    Server CPU is divided both by the messages it ingested (all of them: a server reads
    the whole stream, whoever subscribed) and by the deliveries it made.
    """
    await load.reset()
    lag_before = await _lag_buckets(target)
    total = max(1, round(rate_per_s * spec.step_seconds))
    sequence = ticks.feed_sequence(spec, step, total)
    expected = ticks.expected_per_client(subs, sequence)
    before = cpu_times(target.pid)
    waited_before = runqueue_wait(target.pid)
    load_before = load.cpu_seconds()
    started = time.monotonic()
    fed_seconds = await _feed_ticks(
        target, spec, sequence, rate_per_s, spec.step_seconds, run_id, tick
    )
    fed_at = time.time()
    await wait_for_deliveries(load, sum(expected), quiet=3.0, cap=30.0)
    delta = cpu_times(target.pid) - before
    waited = max(0.0, runqueue_wait(target.pid) - waited_before)
    load_cpu = load.cpu_seconds() - load_before
    elapsed = time.monotonic() - started
    lag_after = await _lag_buckets(target)
    stats = await load.stats()
    counts: dict[int, int] = {}
    for key, count in zip(stats.keys, stats.counts, strict=True):
        counts[key] = counts.get(key, 0) + count
    loss = ticks.losses(counts, expected)
    latency = Latency.of(stats.latencies)
    drain = max(0.0, stats.last_delivery - fed_at) if loss.received else None
    return {
        "rate": rate_per_s,
        "messages": total,
        "offered_per_s": rate(total, fed_seconds),
        "delivered_per_s": rate(loss.received, fed_seconds + (drain or 0.0)),
        "deliveries_per_message": round(loss.expected / total, 3),
        "expected": loss.expected,
        "delivered": loss.received,
        "lost": loss.lost,
        "duplicated": loss.duplicated,
        "drain_seconds": None if drain is None else round(drain, 3),
        "cpu_us_per_message": micros_per(delta.total, total),
        "cpu_us_per_delivery": micros_per(delta.total, loss.received),
        "kernel_share": _cpu(delta, total)["kernel_share"],
        "server_cpu_share": round(delta.total / elapsed, 3) if elapsed > 0 else None,
        "load_cpu_share": round(load_cpu / elapsed, 3) if elapsed > 0 else None,
        # runnable but waiting for a core (other work on the machine): a p99 this size
        # or less may be the neighbours', not the server's
        "server_runqueue_wait_ms": round(waited * 1000, 1),
        "latency_ms": None if latency is None else _latency_dict(latency),
        "server_side_latency_ms": _server_side(lag_before, lag_after),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


async def publisher_throughput(
    session: aiohttp.ClientSession,
    base_url: str,
    pid: int,
    run_id: str,
    singles: int,
    concurrency: int,
    batches: int,
    batch_size: int,
) -> dict[str, Any]:
    """Acknowledged (Kafka acks=all) messages per second: one per request, then batched."""

    async def post(path: str, body: dict[str, Any]) -> bool:
        async with session.post(base_url + path, json=body) as response:
            await response.read()
            return response.status == 202

    gate = asyncio.Semaphore(concurrency)

    async def single(seq: int) -> bool:
        async with gate:
            return await post("/v1/messages", publish_request(run_id + "-s", seq))

    before = cpu_times(pid)
    started = time.monotonic()
    results = await asyncio.gather(*(single(i) for i in range(singles)))
    single_seconds = time.monotonic() - started
    single_cpu = cpu_times(pid) - before
    acked = sum(results)

    before = cpu_times(pid)
    started = time.monotonic()
    batch_acked = 0
    for b in range(batches):
        body = {"messages": [publish_request(f"{run_id}-b{b}", i) for i in range(batch_size)]}
        if await post("/v1/messages/batch", body):
            batch_acked += batch_size
    batch_seconds = time.monotonic() - started
    batch_cpu = cpu_times(pid) - before
    return {
        "single": {
            "requests": singles,
            "concurrency": concurrency,
            "acked": acked,
            "acked_per_s": rate(acked, single_seconds),
            "cpu_us_per_message": micros_per(single_cpu.total, acked),
        },
        "batched": {
            "batches": batches,
            "batch_size": batch_size,
            "acked": batch_acked,
            "acked_per_s": rate(batch_acked, batch_seconds),
            "cpu_us_per_message": micros_per(batch_cpu.total, batch_acked),
        },
    }
