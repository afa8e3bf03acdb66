"""Revocation checks at connect and refresh, batched: one Redis MGET for every check waiting.

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


class RevocationUnknown(ConnectionError):
    """Whether a token is revoked could not be read (Redis unreachable)."""


class BatchedRevocations:
    """RevocationChecker for connects, failing open (see is_revoked); `strict` is the
    same lookup failing closed, for refreshes."""

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
        try:
            return await self.lookup(jti)
        except RevocationUnknown:
            return False  # logged and counted once per lookup, in _run

    async def lookup(self, jti: str) -> bool:
        """Whether jti is revoked; RevocationUnknown when Redis cannot be read."""
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
                        "revocations unreadable: connects go on, refreshes are refused",
                        extra={"error": repr(exc)},
                    )
                    for futures in waiting.values():
                        for future in futures:
                            if not future.done():
                                future.set_exception(RevocationUnknown(repr(exc)))
                    continue
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

    @property
    def strict(self) -> StrictRevocations:
        return StrictRevocations(self)


class StrictRevocations:
    """RevocationChecker for refreshes: fails closed (raises RevocationUnknown).

    A refresh refused during an outage costs nothing: the connection keeps its
    current token, and clients refresh at 70-85 % of its lifetime, so they retry.
    Letting it through would let a revoked token extend a connection for its whole
    new lifetime, and the revocation sweep cannot run while Redis is away.
    """

    def __init__(self, batched: BatchedRevocations) -> None:
        self._batched = batched

    async def is_revoked(self, jti: str) -> bool:
        return await self._batched.lookup(jti)
