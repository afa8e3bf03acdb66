"""One tiny `ticks` step against a running server: what the bench tests assert counts on."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
from bench.feeds import Feed
from bench.loadgen import LoadGenerator
from bench.runner import mint_tokens
from bench.servers import ServerProcess

from bench import scenarios, ticks

SPEC = ticks.TicksSpec(topics=5, clients=12, per_client=3, rates=(40.0,), step_seconds=1.0)


async def one_step(
    server: ServerProcess, feed: Feed, load: LoadGenerator, session: aiohttp.ClientSession
) -> dict[str, Any]:
    """Every client of SPEC connected to its pairs, then one step at 40 msg/s."""
    target = scenarios.Target(server.name, server.pid, feed, session=session)
    subs = ticks.subscriptions(SPEC)
    tokens = mint_tokens(SPEC.clients)
    dials = [
        server.dial(i, tokens[i], [ticks.pair_of(SPEC, p) for p in pairs])
        for i, pairs in enumerate(subs)
    ]
    opened = await scenarios.handshakes(load, target, dials, server.protocol)
    assert (opened["opened"], opened["failed"]) == (SPEC.clients, 0)
    try:
        return await scenarios.ticks_step(load, target, SPEC, subs, 0, 40.0, uuid.uuid4().hex[:6])
    finally:
        await load.close()
