"""Connect-time revocation checks: batched into one lookup per round, failing open."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from prometheus_client import CollectorRegistry

from roomcast_edge.metrics import EdgeMetrics
from roomcast_edge.revocations import BatchedRevocations, RevocationUnknown


class FakePresence:
    def __init__(self, revoked: set[str], fail: bool = False) -> None:
        self.revoked = revoked
        self.fail = fail
        self.calls: list[list[str]] = []

    async def alive_among(self, jtis: Sequence[str]) -> set[str]:
        return set()

    async def revoked_among(self, jtis: Sequence[str]) -> set[str]:
        self.calls.append(list(jtis))
        await asyncio.sleep(0.01)
        if self.fail:
            raise ConnectionError("redis is down")
        return self.revoked & set(jtis)

    async def is_revoked(self, jti: str) -> bool:
        raise AssertionError("connects must not read revocations one by one")


async def test_concurrent_connects_share_lookups_and_get_their_own_answer() -> None:
    jtis = [f"bad-{i}" if i % 7 == 1 else f"ok-{i}" for i in range(50)] + ["bad-1"]
    presence = FakePresence({j for j in jtis if j.startswith("bad")})
    checker = BatchedRevocations(presence, EdgeMetrics(CollectorRegistry()))
    answers = await asyncio.gather(*(checker.is_revoked(j) for j in jtis))
    assert answers == [j.startswith("bad") for j in jtis]
    assert len(presence.calls) < len(jtis) / 5  # batched, not one call each
    assert sorted(j for call in presence.calls for j in call) == sorted(set(jtis))
    # and later connects are looked up again (nothing is cached)
    presence.revoked.add("ok-0")
    assert await checker.is_revoked("ok-0") is True


async def test_an_unreadable_redis_lets_connects_in_and_is_counted() -> None:
    metrics = EdgeMetrics(CollectorRegistry())
    checker = BatchedRevocations(FakePresence({"bad"}, fail=True), metrics)
    assert list(await asyncio.gather(checker.is_revoked("bad"), checker.is_revoked("ok"))) == [
        False,
        False,
    ]
    assert metrics.redis_errors.labels("is_revoked")._value.get() >= 1


async def test_the_strict_view_fails_closed_and_shares_the_lookups() -> None:
    presence = FakePresence({"bad"})
    checker = BatchedRevocations(presence, EdgeMetrics(CollectorRegistry()))
    strict = checker.strict
    answers = await asyncio.gather(strict.is_revoked("bad"), checker.is_revoked("ok"))
    assert list(answers) == [True, False]
    assert len(presence.calls) == 1  # refreshes and connects share one lookup
    presence.fail = True
    connect, refresh = await asyncio.gather(
        checker.is_revoked("bad"), strict.is_revoked("bad"), return_exceptions=True
    )
    assert connect is False
    assert isinstance(refresh, RevocationUnknown)
