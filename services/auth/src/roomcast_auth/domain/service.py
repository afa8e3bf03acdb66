"""The auth service's use cases: issue, heartbeat, revoke. No I/O of its own.

Storage is reached through the TokenStore port; its adapter turns every storage
failure into StoreUnavailable, so callers can answer 503 without knowing Redis.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from roomcast_auth.domain.identity import Identity
from roomcast_core.tokens import IssuedToken, TokenIssuer, TokenVerifier, authenticate


class StoreUnavailable(Exception):
    """The token store could not be reached in time."""


class TokenStore(Protocol):
    """Port: shared token state (Redis in production, a dict in unit tests)."""

    async def is_revoked(self, jti: str) -> bool: ...

    async def record_heartbeat(self, jti: str, timeout_seconds: float) -> None: ...

    async def revoke(self, jti: str, ttl_seconds: int) -> None: ...


class TtlTooLarge(ValueError):
    """A requested lifetime above the configured maximum (refused, never clamped)."""

    def __init__(self, maximum: int) -> None:
        super().__init__(f"ttl must be at most {maximum} seconds")
        self.maximum = maximum


@dataclass(frozen=True, slots=True)
class Heartbeat:
    jti: str
    expires_in: float


@dataclass(frozen=True, slots=True)
class Revocation:
    jti: str
    until: int


@dataclass(frozen=True, slots=True)
class Lifetimes:
    default_ttl: int
    max_ttl: int
    heartbeat_timeout: float
    leeway: int


class AuthService:
    def __init__(
        self,
        issuer: TokenIssuer,
        verifier: TokenVerifier,
        store: TokenStore,
        lifetimes: Lifetimes,
    ) -> None:
        self._issuer = issuer
        self._verifier = verifier
        self._store = store
        self._lifetimes = lifetimes

    @property
    def verifier(self) -> TokenVerifier:
        return self._verifier

    def ttl_for(self, requested: int | None) -> int:
        maximum = self._lifetimes.max_ttl
        if requested is None:
            return min(self._lifetimes.default_ttl, maximum)
        if requested > maximum:
            raise TtlTooLarge(maximum)
        return requested

    def issue(
        self,
        identity: Identity,
        *,
        ttl: int | None = None,
        rooms: Sequence[str] | None = None,
        topics: Sequence[str] | None = None,
    ) -> IssuedToken:
        """Tokens are stateless: issuing never touches the store, so it works without Redis."""
        return self._issuer.issue(
            identity.subject,
            identity.device_id,
            self.ttl_for(ttl),
            rooms=_unique(rooms),
            topics=_unique(topics),
        )

    async def heartbeat(self, token: str) -> Heartbeat:
        """Raises TokenError for a token that must be refused (revoked included)."""
        claims = await authenticate(token, self._verifier, self._store)
        timeout = self._lifetimes.heartbeat_timeout
        await self._store.record_heartbeat(claims.jti, timeout)
        return Heartbeat(jti=claims.jti, expires_in=timeout)

    async def revoke(self, jti: str, now: float | None = None) -> Revocation:
        """Only the id is known, not the token's expiry: keep the revocation for the
        longest lifetime any token may have (max_ttl plus the verifier's clock leeway)."""
        ttl = self._lifetimes.max_ttl + self._lifetimes.leeway
        await self._store.revoke(jti, ttl)
        issued_at = int(time.time() if now is None else now)
        return Revocation(jti=jti, until=issued_at + ttl)


def _unique(names: Sequence[str] | None) -> list[str] | None:
    """Claims keep the caller's order, each name once."""
    return None if names is None else list(dict.fromkeys(names))
