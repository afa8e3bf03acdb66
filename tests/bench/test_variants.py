"""roomcast's own variants in the bench: presence off, staggered token expiries, Redis bus.

The pure parts (plans, tokens, ratios, targets, tables) on made-up figures; then each
variant for real at tiny size (a few clients, a few messages), asserting counts only,
never speed.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from bench.feeds import KafkaFeed, PublisherFeed, RedisStreamFeed
from bench.loadgen import LoadGenerator
from bench.plan import FULL, QUICK, SMOKE
from bench.report import (
    VARIANTS,
    _measured_only,
    ratios_vs,
    readme_table,
    variant_lines,
    variant_targets,
)
from bench.runner import (
    SECRET,
    TOKEN_TTL,
    Infra,
    _create_topic,
    _start_server,
    mint_tokens,
    ticks_servers,
)
from bench.servers import (
    ALL,
    ROOMCAST,
    ROOMCAST_NOPRESENCE,
    ROOMCAST_REDIS,
    ROOMCAST_STAGGERED,
)
from bench.system import Placement

from bench import scenarios
from roomcast_core import stream_wire
from roomcast_harness.services import ServiceProcess
from tests.bench.tiny_ticks import one_step

UNPINNED = Placement(frozenset({0}), frozenset({0}))


def _exp(token: str) -> int:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return int(claims["exp"])


def test_uniform_tokens_share_one_expiry_and_staggered_ones_each_get_their_own() -> None:
    uniform = mint_tokens(50, now=1_000_000)
    staggered = mint_tokens(50, staggered=True, now=1_000_000)
    assert {_exp(t) for t in uniform} == {1_000_000 + TOKEN_TTL}
    assert [_exp(t) for t in staggered] == [1_000_000 + TOKEN_TTL + i for i in range(50)]
    # hours away: nothing expires while a run measures
    assert TOKEN_TTL >= 3600


def test_the_expiry_step_takes_the_largest_count_the_open_files_hold() -> None:
    assert FULL.expiry_connections == (20000,)
    fitted = FULL.within(19_500)
    assert fitted.expiry_connections == (19_500,)
    assert fitted.burst_messages[19_500] == 20
    assert fitted.connections == (1000, 5000, 10000)
    # a count the main ladder already has is not measured twice
    assert FULL.within(10_000).expiry_connections == ()
    assert QUICK.within(19_500).expiry_connections == ()


def test_variants_run_where_their_comparison_needs_them() -> None:
    assert {ROOMCAST_NOPRESENCE, ROOMCAST_STAGGERED, ROOMCAST_REDIS} <= set(ALL)
    # burst-only variants stay out of ticks; the Redis bus runs it beside Kafka
    assert ticks_servers(QUICK, ALL) == [ROOMCAST, ROOMCAST_REDIS, "centrifugo"]
    assert ROOMCAST_NOPRESENCE not in ticks_servers(SMOKE, ALL)
    assert ROOMCAST_REDIS in ticks_servers(SMOKE, ALL)


def _figures(
    hs: float, hs_cpu: float, rate: float, cpu: float, room: tuple[float, float] | None = None
) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "handshake": {"handshakes_per_s": hs, "cpu_us_per_handshake": hs_cpu, "failed": 0},
        "idle": {"rss_per_connection_bytes": 2500},
        "burst": {"deliveries_per_s": rate, "cpu_us_per_delivery": cpu, "lost": 0},
    }
    if room is not None:
        figures["handshake_room"] = {
            "handshakes_per_s": room[0],
            "cpu_us_per_handshake": room[1],
            "failed": 0,
        }
    return figures


def _results(by_server: dict[str, dict[str, Any]], expiry: int | None = None) -> dict[str, Any]:
    scenario_data: dict[str, Any] = {
        "sustained": {
            "400": {
                ROOMCAST: [
                    {
                        "offered_deliveries_per_s": 10_000.0,
                        "cpu_us_per_delivery": 2.0,
                        "latency_ms": {"p50": 5.0, "p99": 9.0, "max": 12.0},
                        "lost": 0,
                    }
                ]
            }
        }
    }
    for server, figures in by_server.items():
        c = str(expiry) if server == ROOMCAST_STAGGERED and expiry else "400"
        for scenario, entry in figures.items():
            scenario_data.setdefault(scenario, {}).setdefault(c, {})[server] = entry
    if expiry:
        # the expiry step measures roomcast too
        for scenario, entry in by_server[ROOMCAST].items():
            scenario_data[scenario][str(expiry)][ROOMCAST] = entry
    results: dict[str, Any] = {
        "plan": {
            "name": "quick",
            "connections": [400],
            **({"expiry_connections": [expiry]} if expiry else {}),
        },
        "servers": list(by_server),
        "scenarios": scenario_data,
        "machine": {"cpus": 2, "server_cores": [0], "load_cores": [1], "python": "3.11",
                    "node": "v20"},
        "commit": "abc", "generated_at": "now", "feeds": {},
    }  # fmt: skip
    for key, (ours, baseline, _) in VARIANTS.items():
        results[key] = _measured_only(ratios_vs(scenario_data, baseline, ours))
    results["targets"] = [v.as_dict() for v in variant_targets(results)]
    decoded: dict[str, Any] = json.loads(json.dumps(results))
    return decoded


def test_presence_ratios_are_on_over_off_and_the_target_reads_the_room_storm() -> None:
    results = _results(
        {
            ROOMCAST: _figures(
                hs=1100.0, hs_cpu=400.0, rate=100_000.0, cpu=1.0, room=(700.0, 500.0)
            ),
            ROOMCAST_NOPRESENCE: _figures(
                hs=1000.0, hs_cpu=400.0, rate=100_000.0, cpu=1.0, room=(1000.0, 400.0)
            ),
        }
    )
    presence = results["ratio_presence_on_vs_off"]
    # roomcast ran a sustained point, the burst-only variant none: no all-empty ratios
    assert "sustained" not in presence
    assert presence["handshake"]["400"] == {"handshakes_per_s": 1.1, "cpu_us_per_handshake": 1.0}
    assert presence["handshake_room"]["400"] == {
        "handshakes_per_s": 0.7,
        "cpu_us_per_handshake": 1.25,
    }
    assert presence["burst"]["400"] == {"cpu_us_per_delivery": 1.0, "deliveries_per_s": 1.0}
    # without a room presence has nothing to do: the target reads the storm into one room
    (verdict,) = results["targets"]
    assert verdict["name"] == "presence_handshakes_vs_off"
    assert verdict["met"] is False
    assert verdict["measured"] == 0.7
    (line,) = variant_lines(results)
    assert line.startswith(
        "variant presence on / off C=400: handshakes/s 1.10x, CPU/handshake 1.00x,"
        " handshakes/s into a room 0.70x, CPU/handshake into a room 1.25x"
    )
    assert "burst CPU/delivery 1.00x" in line
    table = readme_table(results)
    row = "| presence on / off | 400 | 1.10x | 1.00x | 0.70x | 1.25x | 1.00x | 1.00x | 1.00x | - |"
    assert row in table


def test_staggered_expiry_is_judged_at_the_largest_count() -> None:
    results = _results(
        {
            ROOMCAST: _figures(hs=900.0, hs_cpu=400.0, rate=200_000.0, cpu=1.0),
            ROOMCAST_STAGGERED: _figures(hs=900.0, hs_cpu=400.0, rate=150_000.0, cpu=1.05),
        },
        expiry=19_500,
    )
    burst = results["ratio_staggered_vs_uniform_expiry"]["burst"]
    assert burst["19500"] == {"cpu_us_per_delivery": 1.05, "deliveries_per_s": 0.75}
    verdicts = {v["name"]: v for v in results["targets"]}
    assert verdicts["staggered_expiry_burst_cpu"]["met"] is True
    assert verdicts["staggered_expiry_burst_rate"]["met"] is False
    table = readme_table(results)
    # the expiry step's rows list only the two servers it ran
    assert "| 19500 | roomcast_staggered | 150,000 | 1.05 |" in table
    assert "| 19500 | roomcast | 200,000 | 1 |" in table
    assert "| staggered / uniform token expiry | 19500 |" in table
    # presence was not measured at the expiry step: no row of dashes for it
    with_presence = _results(
        {
            ROOMCAST: _figures(hs=900.0, hs_cpu=400.0, rate=200_000.0, cpu=1.0),
            ROOMCAST_NOPRESENCE: _figures(hs=900.0, hs_cpu=400.0, rate=200_000.0, cpu=1.0),
            ROOMCAST_STAGGERED: _figures(hs=900.0, hs_cpu=400.0, rate=150_000.0, cpu=1.05),
        },
        expiry=19_500,
    )
    lines = variant_lines(with_presence)
    assert [line.split(":")[0] for line in lines] == [
        "variant presence on / off C=400",
        "variant staggered / uniform token expiry C=19500",
    ]


def test_no_variant_no_variant_line_or_target() -> None:
    results = _results({ROOMCAST: _figures(hs=900.0, hs_cpu=400.0, rate=1.0, cpu=1.0)})
    assert results["targets"] == []
    assert variant_lines(results) == []
    assert "roomcast variant" not in readme_table(results)


# ---- for real, tiny -------------------------------------------------------------


@pytest.fixture(scope="module")
def load() -> Iterator[LoadGenerator]:
    with LoadGenerator(1, None) as generator:
        yield generator


@pytest.fixture
async def bench_infra(
    redis_url: str, aof_redis_url: str, kafka_bootstrap: str
) -> AsyncIterator[Infra]:
    topic = f"bench.test.{uuid.uuid4().hex[:8]}"
    await _create_topic(kafka_bootstrap, topic)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    bus = aioredis.Redis.from_url(aof_redis_url)
    try:
        infra = Infra(
            env={
                "ROOMCAST_REDIS__URL": redis_url,
                "ROOMCAST_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
                "ROOMCAST_KAFKA__TOPIC": topic,
                "ROOMCAST_JWT__SECRET": SECRET,
                "OTEL_SDK_DISABLED": "true",
            },
            topic=topic,
            bootstrap=kafka_bootstrap,
            producer=producer,
            feed=KafkaFeed(producer, topic),
            bus_redis_url=aof_redis_url,
            bus_client=bus,
            bus_prefix=f"bench:test:{uuid.uuid4().hex[:8]}",
        )
        infra.bus_feed = infra.bus_direct()
        yield infra
    finally:
        await bus.aclose()
        await producer.stop()


async def _handshakes_and_burst(
    name: str,
    tokens: list[str],
    infra: Infra,
    load: LoadGenerator,
    workdir: Path,
) -> tuple[dict[str, Any], dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        server, feed = await _start_server(name, workdir, UNPINNED, infra, session)
        try:
            target = scenarios.Target(name, server.pid, feed, session=session)
            hs = await scenarios.handshakes(load, target, server.dials(tokens), server.protocol)
            burst = await scenarios.burst(
                load, target, len(tokens), 5, uuid.uuid4().hex[:6], quiet=3.0, cap=30.0
            )
            assert server.running
            return hs, burst
        finally:
            await load.close()
            await asyncio.to_thread(server.stop)


@pytest.mark.parametrize(
    ("name", "staggered"),
    [(ROOMCAST_NOPRESENCE, False), (ROOMCAST_STAGGERED, True), (ROOMCAST_REDIS, False)],
)
async def test_each_variant_delivers_every_burst_message_once(
    name: str, staggered: bool, bench_infra: Infra, load: LoadGenerator, tmp_path: Path
) -> None:
    tokens = mint_tokens(12, staggered=staggered)
    hs, burst = await _handshakes_and_burst(name, tokens, bench_infra, load, tmp_path)
    assert (hs["opened"], hs["failed"]) == (12, 0)
    assert burst["expected"] == burst["delivered"] == 12 * 5
    assert (burst["lost"], burst["duplicated"], burst["closed_during"]) == (0, 0, 0)


async def test_a_publisher_on_the_redis_bus_feeds_roomcast_redis(
    bench_infra: Infra, load: LoadGenerator, tmp_path: Path
) -> None:
    publisher = ServiceProcess("publisher", bench_infra.bus_env(), tmp_path, name="pub-redis")
    await asyncio.to_thread(publisher.start, 90.0)
    try:
        async with aiohttp.ClientSession() as session:
            bench_infra.bus_feed = PublisherFeed(session, publisher.url)
            hs, burst = await _handshakes_and_burst(
                ROOMCAST_REDIS, mint_tokens(12), bench_infra, load, tmp_path
            )
    finally:
        await asyncio.to_thread(publisher.stop)
    assert (hs["opened"], hs["failed"]) == (12, 0)
    assert burst["expected"] == burst["delivered"] == 12 * 5
    assert (burst["lost"], burst["duplicated"]) == (0, 0)


async def test_the_redis_feed_appends_in_the_wire_format_and_ticks_reach_their_clients(
    bench_infra: Infra, load: LoadGenerator, tmp_path: Path
) -> None:
    async with aiohttp.ClientSession() as session:
        server, feed = await _start_server(ROOMCAST_REDIS, tmp_path, UNPINNED, bench_infra, session)
        try:
            assert isinstance(feed, RedisStreamFeed)
            step = await one_step(server, feed, load, session)
        finally:
            await asyncio.to_thread(server.stop)
    assert step["messages"] == 40
    assert step["expected"] == step["delivered"] > 0
    assert (step["lost"], step["duplicated"]) == (0, 0)
    # every message went to this edge's own streams, offsets dense from 0 per stream
    client = bench_infra.bus_client
    assert client is not None
    appended = 0
    for partition in range(3):
        entries: Any = await client.xrange(stream_wire.stream_key(feed.prefix, partition))
        offsets = [int(fields[b"offset"]) for _, fields in entries]
        assert offsets == list(range(len(offsets)))
        assert all({b"key", b"value"} <= set(fields) for _, fields in entries)
        appended += len(entries)
    assert appended == 40
