"""Background checks: heartbeats, token expiry, the revocation sweep and the history's age
bound."""

from __future__ import annotations

import asyncio
import logging
import time

from roomcast_edge.domain.ports import Presence
from roomcast_edge.node import CLOSE_HEARTBEAT, CLOSE_REVOKED, Node

log = logging.getLogger(__name__)


async def check_heartbeats(node: Node, presence: Presence) -> None:
    """Close connections with no life for the heartbeat timeout (4000), and those
    whose token ended more than REFRESH_GRACE ago (4001).

    Life is a client frame (seen by the handler) or a live HTTP heartbeat of the
    token in Redis, read for all stale candidates with one MGET. When Redis cannot
    be read the candidates are kept (fail open): one Redis outage must not cut
    every client that relies on HTTP heartbeats.
    """
    settings = node.settings
    while True:
        await asyncio.sleep(settings.heartbeat_check_interval)
        node.expire_tokens(time.time())
        node.forget_unknown_partitions()
        stale = node.stale(node.loop.time() - settings.heartbeat_timeout)
        if not stale:
            continue
        try:
            alive = await presence.alive_among(sorted({c.jti for c in stale}))
        except Exception as exc:
            node.metrics.redis_errors.labels("alive_among").inc()
            log.warning("heartbeats unreadable, keeping stale clients", extra={"error": repr(exc)})
            continue
        cutoff = node.loop.time() - settings.heartbeat_timeout
        for conn in stale:
            # Re-checked: a frame may have arrived while Redis answered.
            if conn.jti not in alive and conn.last_life < cutoff:
                node.close(conn, *CLOSE_HEARTBEAT, drop="heartbeat_timeout")


def close_revoked(node: Node, jti: str) -> None:
    for conn in node.tokens.holders(jti):
        node.close(conn, *CLOSE_REVOKED, drop="revoked")


async def sweep_revocations(node: Node, presence: Presence, interval: float) -> None:
    """Fallback for revocation notices missed while the pub/sub link was down."""
    while True:
        await asyncio.sleep(interval)
        tokens = node.tokens.jtis()
        if not tokens:
            continue
        try:
            revoked = await presence.revoked_among(tokens)
        except Exception as exc:
            node.metrics.redis_errors.labels("revoked_among").inc()
            log.warning("revocations unreadable", extra={"error": repr(exc)})
            continue
        for jti in revoked:
            close_revoked(node, jti)


async def expire_history(node: Node) -> None:
    """Age the recovery history out on a timer, not only when a client asks for recovery:
    memory held by old messages is given back while nobody reconnects."""
    interval = min(1.0, node.settings.history_age / 4)
    while True:
        await asyncio.sleep(interval)
        node.expire_history(time.time())
