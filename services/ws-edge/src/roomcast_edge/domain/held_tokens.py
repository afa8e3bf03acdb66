"""Which open connection holds which token, and when each token ends for good.

Two questions are asked of tokens while connections are open: "who holds this
token?" (a revocation names it) and "whose token has ended?" (exp + leeway +
REFRESH_GRACE passed). Both follow the token in force, which a refresh replaces, so
both indexes change together here. Nothing here is touched per message: deadlines
sit in one ExpiryWheel, swept periodically.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar

from roomcast_core.tokens import TokenClaims
from roomcast_edge.domain.expiry import ExpiryWheel
from roomcast_edge.domain.lifetime import deadline


class Holder(Hashable, Protocol):
    @property
    def claims(self) -> TokenClaims: ...


H = TypeVar("H", bound=Holder)


class HeldTokens(Generic[H]):
    def __init__(self, grace: float) -> None:
        # Seconds past `exp` a connection may stay: the JWT leeway plus REFRESH_GRACE.
        self.grace = grace
        self.expiry: ExpiryWheel[H] = ExpiryWheel()
        self._by_jti: dict[str, set[H]] = {}

    def add(self, holder: H) -> None:
        self._by_jti.setdefault(holder.claims.jti, set()).add(holder)
        self.expiry.schedule(holder, deadline(holder.claims, self.grace))

    def replaced(self, holder: H, old: TokenClaims) -> None:
        """`holder` now holds its current claims instead of `old` (a refresh)."""
        if holder.claims.jti != old.jti:
            self._unindex(holder, old.jti)
            self._by_jti.setdefault(holder.claims.jti, set()).add(holder)
        self.expiry.schedule(holder, deadline(holder.claims, self.grace))

    def remove(self, holder: H) -> None:
        self._unindex(holder, holder.claims.jti)
        self.expiry.cancel(holder)

    def holders(self, jti: str) -> list[H]:
        return list(self._by_jti.get(jti, ()))

    def jtis(self) -> list[str]:
        return list(self._by_jti)

    def ended(self, now: float) -> list[H]:
        """Holders whose token ended more than the grace before `now`; each once."""
        return self.expiry.due(now)

    def _unindex(self, holder: H, jti: str) -> None:
        same_token = self._by_jti.get(jti)
        if same_token is not None:
            same_token.discard(holder)
            if not same_token:
                del self._by_jti[jti]
