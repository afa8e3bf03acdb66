"""Revocation checks at connect, batched: one Redis MGET for every connect waiting.

While one lookup is in flight, the tokens of new connects gather for the next one,
so a storm of handshakes costs a few MGETs instead of one GET (and often one pooled
Redis connection) each. Every connect still reads Redis itself: nothing is cached,
so a revocation is honoured as soon as Redis has it.
"""

from __future__ import annotations

import asyncio
import logging

from roomcast_edge.domain.ports import Presence
from roomcast_edge.metrics import EdgeMetrics

log = logging.getLogger(__name__)


class BatchedRevocations:
    """RevocationChecker for connects. Fails open: see is_revoked."""

    def __init__(self, presence: Presence, metrics: EdgeMetrics) -> None:
        self._presence = presence
        self._metrics = metrics
        self._waiting: dict[str, list[asyncio.Future[bool]]] = {}
        self._lookup: asyncio.Task[None] | None = None

    async def is_revoked(self, jti: str) -> bool:
        """Whether jti is revoked; False when Redis cannot be read.

        Fail open: while Redis is unreachable a revoked but otherwise valid token
        can connect (counted in roomcast_edge_redis_errors_total); it is closed by
        the sweep once Redis is back. Refusing every client during an outage would
        be worse for a push service whose tokens are short-lived and signed.
        """
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(jti, []).append(future)
        if self._lookup is None:
            self._lookup = asyncio.create_task(self._run(), name="revocation-lookup")
        return await future

    async def _run(self) -> None:
        try:
            while self._waiting:
                waiting, self._waiting = self._waiting, {}
                try:
                    revoked = await self._presence.revoked_among(list(waiting))
                except Exception as exc:
                    self._metrics.redis_errors.labels("is_revoked").inc()
                    log.warning(
                        "revocation unreadable, connecting anyway", extra={"error": repr(exc)}
                    )
                    revoked = set()
                for jti, futures in waiting.items():
                    for future in futures:
                        if not future.done():
                            future.set_result(jti in revoked)
        finally:
            self._lookup = None
            for futures in self._waiting.values():  # cancelled: nobody waits forever
                for future in futures:
                    future.cancel()
            self._waiting = {}
