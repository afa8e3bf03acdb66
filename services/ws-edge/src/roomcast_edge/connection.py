"""One client WebSocket: its identity, its outbound buffer, its liveness."""

from __future__ import annotations

import asyncio
import uuid

from aiohttp import web

from roomcast_core.tokens import TokenClaims
from roomcast_edge.domain.ratelimit import TokenBucket


class Connection:
    """Hashable by identity: the hub indexes these objects directly."""

    __slots__ = (
        "bucket",
        "claims",
        "close_task",
        "closed",
        "deflate",
        "id",
        "last_life",
        "pending",
        "pending_bytes",
        "skip",
        "strikes",
        "transport",
        "ws",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport,
        claims: TokenClaims,
        bucket: TokenBucket,
        now: float,
    ) -> None:
        self.id = uuid.uuid4().hex
        self.ws = ws
        self.transport = transport
        self.claims = claims
        self.bucket = bucket
        # Frames waiting for this loop turn's flush, written with one transport.write.
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.last_life = now
        self.closed = False
        # Negotiated permessage-deflate window bits; 0 when the client sends plain frames.
        self.deflate = 0
        self.close_task: asyncio.Task[None] | None = None
        # Per partition, live offsets up to which this connection already has
        # (it recovered from a vector ahead of this edge); None almost always.
        self.skip: dict[int, int] | None = None
        # Requests refused by the rate limit since the last accepted one.
        self.strikes = 0

    @property
    def jti(self) -> str:
        return self.claims.jti

    def already_has(self, partition: int, offset: int) -> bool:
        skip = self.skip
        if skip is None:
            return False
        limit = skip.get(partition)
        if limit is None:
            return False
        if offset <= limit:
            return True
        del skip[partition]
        if not skip:
            self.skip = None
        return False
