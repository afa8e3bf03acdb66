"""A connection's token over time: refusal codes, refresh vetting, narrowing, deadlines.

The rule this module keeps: a refresh either replaces the connection's token whole
(claims, lifetime and the rights they grant) or changes nothing at all. A new token
must verify and name the same user and device (`sub`, `did`); only then are the
rooms and subscriptions its claims no longer allow left, and listed as `revoked`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Protocol, TypeVar

from roomcast_core.tokens import TokenClaims, TokenError
from roomcast_edge.domain.hub import Hub
from roomcast_edge.domain.protocol import allowed

C = TypeVar("C", bound=Hashable)

# Error codes of a refused token (401 at connect, and in a failed refresh's message).
TOKEN_EXPIRED = "token_expired"  # noqa: S105 - a code, not a secret
TOKEN_INVALID = "token_invalid"  # noqa: S105 - a code, not a secret
TOKEN_REVOKED = "token_revoked"  # noqa: S105 - a code, not a secret

OTHER_IDENTITY = "the new token must be for the same user and device (sub and did)"


class TokenCheck(Protocol):
    """Port: signature, algorithm and time checks of a token (no storage)."""

    def verify(self, token: str, now: float | None = None) -> TokenClaims: ...


def refusal_code(reason: str) -> str:
    """The error code a client acts on, from a TokenError's reason.

    A token that is not valid yet is refused like an expired one: a fresh token
    (or the clock catching up) cures both.
    """
    if reason in ("expired", "not_yet_valid"):
        return TOKEN_EXPIRED
    if reason == "revoked":
        return TOKEN_REVOKED
    return TOKEN_INVALID


def refusal_message(error: TokenError) -> str:
    return f"token refused ({refusal_code(error.reason)}): {error}"


def vet_refresh(current: TokenClaims, token: str, check: TokenCheck) -> TokenClaims | str:
    """The new token's claims, or why it cannot replace the current one."""
    try:
        claims = check.verify(token)
    except TokenError as exc:
        return refusal_message(exc)
    if claims.sub != current.sub or claims.did != current.did:
        return OTHER_IDENTITY
    return claims


def narrow(hub: Hub[C], conn: C, claims: TokenClaims) -> list[str]:
    """Leave what `claims` no longer allow; the rooms and `topic:type`s left."""
    revoked: list[str] = []
    for room in sorted(hub.rooms_of(conn)):
        if not allowed(claims.rooms, room):
            hub.leave(conn, room)
            revoked.append(room)
    for topic, type_ in sorted(hub.subscriptions_of(conn)):
        if not allowed(claims.topics, topic):
            hub.unsubscribe(conn, topic, type_)
            revoked.append(f"{topic}:{type_}")
    return revoked


def expires_in(claims: TokenClaims, now: float) -> int:
    """Whole seconds until the token's exp (0 once it has passed)."""
    return max(0, math.floor(claims.exp - now))


def deadline(claims: TokenClaims, grace: float) -> float:
    """When a connection still on these claims is closed with 4001 (epoch seconds)."""
    return claims.exp + grace
