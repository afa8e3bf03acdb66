"""AuthService with an in-memory store: the use cases without Redis."""

from __future__ import annotations

import pytest

from roomcast_auth.domain.identity import Identity
from roomcast_auth.domain.service import (
    AuthService,
    Lifetimes,
    StoreUnavailable,
    TokenStore,
    TtlTooLarge,
)
from roomcast_core.tokens import TokenError, TokenIssuer, TokenVerifier, VerificationKey

SECRET = "unit-auth-secret-0123456789abcdefghij"
LIFETIMES = Lifetimes(default_ttl=600, max_ttl=3600, heartbeat_timeout=30.0, leeway=5)


class MemoryStore:
    def __init__(self) -> None:
        self.heartbeats: dict[str, float] = {}
        self.revoked: dict[str, int] = {}
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("down")

    async def is_revoked(self, jti: str) -> bool:
        self._check()
        return jti in self.revoked

    async def record_heartbeat(self, jti: str, timeout_seconds: float) -> None:
        self._check()
        self.heartbeats[jti] = timeout_seconds

    async def revoke(self, jti: str, ttl_seconds: int) -> None:
        self._check()
        self.revoked[jti] = ttl_seconds


def make(store: MemoryStore, lifetimes: Lifetimes = LIFETIMES) -> AuthService:
    _: TokenStore = store  # mypy proves the fake fits the port
    return AuthService(
        TokenIssuer("HS256", SECRET),
        TokenVerifier([VerificationKey("HS256", SECRET)]),
        store,
        lifetimes,
    )


def test_issue_applies_default_ttl_and_dedupes_claims() -> None:
    service = make(MemoryStore())
    issued = service.issue(Identity("u", "d"), rooms=["a", "b", "a"], topics=["t"])
    assert issued.claims.exp - issued.claims.iat == 600
    assert (issued.claims.sub, issued.claims.did) == ("u", "d")
    assert issued.claims.rooms == ("a", "b")
    assert issued.claims.topics == ("t",)
    assert service.issue(Identity("u", "d")).claims.rooms is None


def test_ttl_over_the_cap_is_refused_not_clamped() -> None:
    service = make(MemoryStore())
    assert service.ttl_for(3600) == 3600
    with pytest.raises(TtlTooLarge, match="3600"):
        service.ttl_for(3601)
    capped = make(
        MemoryStore(), Lifetimes(default_ttl=9000, max_ttl=100, heartbeat_timeout=1, leeway=0)
    )
    assert capped.ttl_for(None) == 100


def test_issue_never_touches_the_store() -> None:
    store = MemoryStore()
    store.down = True
    assert make(store).issue(Identity("u", "d")).token


async def test_heartbeat_records_with_the_timeout() -> None:
    store = MemoryStore()
    service = make(store)
    issued = service.issue(Identity("u", "d"))
    beat = await service.heartbeat(issued.token)
    assert beat.expires_in == 30.0
    assert store.heartbeats == {issued.claims.jti: 30.0}


async def test_heartbeat_refuses_revoked_and_reports_store_outage() -> None:
    store = MemoryStore()
    service = make(store)
    issued = service.issue(Identity("u", "d"))
    revocation = await service.revoke(issued.claims.jti, now=1000)
    assert store.revoked == {issued.claims.jti: 3605}
    assert revocation.until == 1000 + 3605
    with pytest.raises(TokenError) as caught:
        await service.heartbeat(issued.token)
    assert caught.value.reason == "revoked"
    assert store.heartbeats == {}
    store.down = True
    with pytest.raises(StoreUnavailable):
        await service.heartbeat(service.issue(Identity("u", "d")).token)
    with pytest.raises(TokenError):
        await service.heartbeat("garbage")  # checked before the store is asked
