"""HeldTokens: who holds which token, and whose token ended, following refreshes."""

from __future__ import annotations

from dataclasses import dataclass

from roomcast_core.tokens import TokenClaims, TokenIssuer
from roomcast_edge.domain.held_tokens import HeldTokens

ISSUER = TokenIssuer("HS256", "unit-secret-0123456789abcdefghijklmnop")
GRACE = 10.0


@dataclass(eq=False)
class Holder:
    claims: TokenClaims


def _claims(ttl: int = 60) -> TokenClaims:
    return ISSUER.issue("u", "d", ttl).claims


def test_holders_are_found_by_token_until_removed() -> None:
    tokens: HeldTokens[Holder] = HeldTokens(GRACE)
    shared = _claims()
    a, b, c = Holder(shared), Holder(shared), Holder(_claims())
    for holder in (a, b, c):
        tokens.add(holder)
    assert set(tokens.holders(shared.jti)) == {a, b}
    assert sorted(tokens.jtis()) == sorted({shared.jti, c.claims.jti})
    tokens.remove(a)
    tokens.remove(b)
    assert tokens.holders(shared.jti) == []
    assert tokens.jtis() == [c.claims.jti]
    assert tokens.ended(c.claims.exp + GRACE + 1) == [c]


def test_a_token_ends_after_exp_plus_the_grace_and_is_reported_once() -> None:
    tokens: HeldTokens[Holder] = HeldTokens(GRACE)
    holder = Holder(_claims())
    tokens.add(holder)
    exp = holder.claims.exp
    assert tokens.ended(exp + GRACE - 0.01) == []
    assert tokens.ended(exp + GRACE) == [holder]
    assert tokens.ended(exp + GRACE + 5) == []


def test_a_replaced_token_moves_both_the_index_and_the_deadline() -> None:
    tokens: HeldTokens[Holder] = HeldTokens(GRACE)
    old = _claims(60)
    holder = Holder(old)
    tokens.add(holder)
    holder.claims = _claims(3600)
    tokens.replaced(holder, old)
    assert tokens.holders(old.jti) == []
    assert tokens.holders(holder.claims.jti) == [holder]
    assert tokens.ended(old.exp + GRACE + 1) == []
    assert tokens.expiry.deadline(holder) == holder.claims.exp + GRACE
    tokens.remove(holder)
    assert tokens.jtis() == []
    assert holder not in tokens.expiry
