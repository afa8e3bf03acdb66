"""A client's session as the protocol sees it: who it is, its request budget, and
the live offsets it already has.

The transport's connection object extends this class (one object per client, so
an idle connection stays small); the domain reads and writes only what is here and
never touches a socket.
"""

from __future__ import annotations

import time
import uuid

from roomcast_core.tokens import TokenClaims
from roomcast_edge.domain.ratelimit import TokenBucket


class Session:
    """Hashable by identity: the hub indexes sessions directly."""

    __slots__ = ("bucket", "claims", "connected_at", "id", "skip", "strikes")

    def __init__(
        self, claims: TokenClaims, bucket: TokenBucket, connection_id: str | None = None
    ) -> None:
        # The edge names its connections (the id says which edge holds it); a bare
        # session, as in unit tests, gets a unique one of its own.
        self.id = connection_id or uuid.uuid4().hex
        self.claims = claims
        self.bucket = bucket
        # Epoch ms, for operators asking when it connected.
        self.connected_at = int(time.time() * 1000)
        # Requests refused by the rate limit since the last accepted one.
        self.strikes = 0
        # Per partition, live offsets up to which this client already has (it
        # recovered from a vector ahead of this edge); None almost always.
        self.skip: dict[int, int] | None = None

    @property
    def jti(self) -> str:
        return self.claims.jti

    def already_has(self, partition: int, offset: int) -> bool:
        """Whether a live push at this position reached the client before (and must not again)."""
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
