"""Refresh vetting, narrowing and refusal codes, without a socket."""

from __future__ import annotations

import time
from collections.abc import Callable

import jwt
import pytest

from roomcast_core.tokens import TokenClaims, TokenIssuer, TokenVerifier, VerificationKey
from roomcast_edge.domain.hub import Hub
from roomcast_edge.domain.lifetime import (
    OTHER_IDENTITY,
    deadline,
    expires_in,
    narrow,
    refusal_code,
    vet_refresh,
)

KEY = "unit-secret-0123456789abcdefghijklmnop"
ISSUER = TokenIssuer("HS256", KEY)
VERIFIER = TokenVerifier([VerificationKey("HS256", KEY)])


def current() -> TokenClaims:
    """The connection's token, made fresh for each test."""
    return ISSUER.issue("u1", "d1", 600, rooms=["a", "b"]).claims


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        ("expired", "token_expired"),
        ("not_yet_valid", "token_expired"),
        ("revoked", "token_revoked"),
        ("malformed", "token_invalid"),
        ("bad_algorithm", "token_invalid"),
        ("bad_signature", "token_invalid"),
        ("unknown_key", "token_invalid"),
    ],
)
def test_refusal_codes(reason: str, code: str) -> None:
    assert refusal_code(reason) == code


def test_a_token_of_the_same_user_and_device_is_accepted() -> None:
    fresh = ISSUER.issue("u1", "d1", 900, rooms=["a"])
    claims = vet_refresh(current(), fresh.token, VERIFIER)
    assert claims == fresh.claims


def _hs512() -> str:
    now = int(time.time())
    body = {"sub": "u1", "did": "d1", "jti": "j", "iat": now, "exp": now + 60}
    return jwt.encode(body, "k" * 64, algorithm="HS512")


# Tokens are made when the test runs, not when it is collected: collection comes
# long before a late test runs, and a token made then could have expired.
@pytest.mark.parametrize(
    ("make_token", "expected"),
    [
        (lambda: "garbage", "token_invalid"),
        (lambda: ISSUER.issue("u1", "d1", 10, now=time.time() - 100).token, "token_expired"),
        (lambda: ISSUER.issue("u1", "d1", 600, now=time.time() + 900).token, "token_expired"),
        (lambda: TokenIssuer("HS256", "z" * 40).issue("u1", "d1", 600).token, "signature"),
        (_hs512, "algorithm"),
        (lambda: ISSUER.issue("u2", "d1", 600).token, OTHER_IDENTITY),
        (lambda: ISSUER.issue("u1", "d2", 600).token, OTHER_IDENTITY),
    ],
)
def test_bad_refresh_tokens_are_refused_with_the_reason(
    make_token: Callable[[], str], expected: str
) -> None:
    refused = vet_refresh(current(), make_token(), VERIFIER)
    assert isinstance(refused, str)
    assert expected in refused


class Conn:
    pass


def test_narrowing_leaves_only_what_the_new_claims_no_longer_allow() -> None:
    hub: Hub[Conn] = Hub()
    conn, other = Conn(), Conn()
    for c in (conn, other):
        hub.add(c)
        hub.join(c, "a")
        hub.join(c, "b")
        hub.subscribe(c, "keep", "*")
        hub.subscribe(c, "drop", "x")
    narrower = ISSUER.issue("u1", "d1", 600, rooms=["a"], topics=["keep"]).claims
    assert narrow(hub, conn, narrower) == ["b", "drop:x"]
    assert hub.rooms_of(conn) == frozenset({"a"})
    assert hub.subscriptions_of(conn) == frozenset({("keep", "*")})
    assert set(hub.recipients(None, None, "b")) == {other}  # the other connection keeps it
    # No claim at all allows everything; "*" does too.
    assert narrow(hub, other, ISSUER.issue("u1", "d1", 600).claims) == []
    assert narrow(hub, other, ISSUER.issue("u1", "d1", 600, rooms=["*"], topics=["*"]).claims) == []


def test_expires_in_and_deadline() -> None:
    claims = ISSUER.issue("u1", "d1", 30, now=1000.0).claims
    assert expires_in(claims, 1000.0) == 30
    assert expires_in(claims, 1010.5) == 19
    assert expires_in(claims, 2000.0) == 0
    assert deadline(claims, 25.0) == 1055.0
