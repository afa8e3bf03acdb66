"""A tiny benchmark end to end against the naive aiohttp peer: the tooling counts right.

Asserts on counts only (connections, deliveries, losses), never on speed.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from bench.feeds import FeedError, PeerFeed
from bench.loadgen import LoadGenerator
from bench.messages import publish_request
from bench.plan import SMOKE
from bench.report import build, write_outputs
from bench.runner import SECRET, mint_tokens, run
from bench.servers import AIOHTTP_NAIVE, start_naive_peer


async def test_a_tiny_run_counts_every_delivery(tmp_path: Path) -> None:
    plan, outcome, machine = await run(
        SMOKE, [AIOHTTP_NAIVE], tmp_path / "work", log=lambda _: None, pin_driver=False
    )
    assert outcome.errors == {}
    c = str(SMOKE.connections[0])
    handshake = outcome.scenarios["handshake"][c][AIOHTTP_NAIVE]
    assert (handshake["opened"], handshake["failed"]) == (20, 0)
    assert handshake["handshakes_per_s"] > 0
    burst = outcome.scenarios["burst"][c][AIOHTTP_NAIVE]
    assert burst["expected"] == burst["delivered"] == 20 * 5
    assert (burst["lost"], burst["duplicated"]) == (0, 0)
    assert burst["latency_ms"]["count"] == 100
    assert burst["cpu_us_per_delivery"] is not None
    (point,) = outcome.scenarios["sustained"][c][AIOHTTP_NAIVE]
    assert point["messages"] == 10
    assert point["delivered"] == 20 * 10
    assert point["lost"] == 0
    assert point["latency_ms"]["p50"] <= point["latency_ms"]["p99"] <= point["latency_ms"]["max"]
    idle = outcome.scenarios["idle"][c][AIOHTTP_NAIVE]
    assert idle["rss_after_bytes"] > 0

    results = build(plan, [AIOHTTP_NAIVE], outcome, machine)
    written = write_outputs(results, tmp_path / "results")
    saved = json.loads((tmp_path / "results" / "smoke.json").read_text())
    assert saved["scenarios"]["burst"][c][AIOHTTP_NAIVE]["delivered"] == 100
    assert {t["name"] for t in saved["targets"]} >= {"nothing_lost", "rss_per_idle_connection"}
    assert tmp_path / "results" / "smoke-latency.png" in written
    assert (tmp_path / "results" / "smoke-latency.png").read_bytes()[:4] == b"\x89PNG"


async def test_refused_tokens_and_bad_feeds_are_counted_not_hidden(tmp_path: Path) -> None:
    server = start_naive_peer(tmp_path, None, SECRET)
    try:
        with LoadGenerator(1, None) as load:
            tokens = mint_tokens(4)
            good = [server.ws_url(t) for t in tokens[:3]]
            # a token that is not a JWT, and one whose signature was tampered with
            bad = [server.ws_url("not-a-jwt"), server.ws_url(tokens[3][:-2] + "xx")]
            result = await load.connect(good + bad, timeout=30)
            assert (result["opened"], result["failed"]) == (3, 2)
            assert sum(result["errors"].values()) == 2

            async with aiohttp.ClientSession() as session:
                async with session.post(server.base_url + "/publish", json={"records": 5}) as r:
                    assert r.status == 400
                async with session.post(server.base_url + "/publish", data=b"{nope") as r:
                    assert r.status == 400
                feed = PeerFeed(session, server.base_url + "/missing")
                with pytest.raises(FeedError, match="404"):
                    await feed.publish([publish_request("t", 1)])
                await PeerFeed(session, server.base_url).publish([publish_request("t", 1)])
            # the refused attempts did not disturb the open connections
            count = 0
            for _ in range(100):
                count, _last = await load.progress()
                if count == 3:
                    break
                await asyncio.sleep(0.1)
            assert count == 3
    finally:
        server.stop()
