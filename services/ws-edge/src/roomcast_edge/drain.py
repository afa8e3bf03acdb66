"""SIGTERM: stop taking clients, then close the open ones spread over the drain window.

Spreading the 1012 closes keeps every client from reconnecting to the other edges in
the same instant.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from roomcast_core.health import HEALTH_KEY
from roomcast_edge.keys import NODE_KEY
from roomcast_edge.node import CLOSE_RESTART

log = logging.getLogger(__name__)

STEP_SECONDS = 0.1
CLOSE_WAIT_SECONDS = 5.0


async def drain(app: web.Application) -> None:
    node = app[NODE_KEY]
    app[HEALTH_KEY].draining = True
    node.draining = True
    conns = list(node.connections.values())
    window = node.settings.drain_seconds
    log.info("draining", extra={"connections": len(conns), "seconds": window})
    steps = max(1, min(len(conns), int(window / STEP_SECONDS)))
    per_step = max(1, -(-len(conns) // steps))  # ceiling
    for start in range(0, len(conns), per_step):
        if start:
            await asyncio.sleep(window / steps)
        for conn in conns[start : start + per_step]:
            node.close(conn, *CLOSE_RESTART, drop="drain")
    # Connections that arrived before the flag was seen.
    for conn in list(node.connections.values()):
        node.close(conn, *CLOSE_RESTART, drop="drain")
    await node.wait_closed(CLOSE_WAIT_SECONDS)
    log.info("drained")
