"""The client's token-lifetime policy: refresh timing, close codes, refused upgrades."""

from __future__ import annotations

import random
import time

import pytest

from roomcast_client.lifetime import (
    REFRESH_WINDOW,
    TERMINAL_CLOSE_CODES,
    AfterClose,
    after_close,
    handshake_error_code,
    refresh_delay,
    refresh_retry_delay,
    unverified_exp,
)
from roomcast_core.tokens import TokenIssuer


@pytest.mark.parametrize(
    ("code", "action"),
    [
        (4000, AfterClose.RECONNECT),
        (4008, AfterClose.RECONNECT),
        (1012, AfterClose.RECONNECT),
        (1006, AfterClose.RECONNECT),
        (None, AfterClose.RECONNECT),
        (4001, AfterClose.NEW_TOKEN),
        (1008, AfterClose.STOP),
        (4003, AfterClose.STOP),
        (1009, AfterClose.STOP),
        (1002, AfterClose.STOP),
        (1007, AfterClose.STOP),
    ],
)
def test_what_a_client_does_after_each_close_code(code: int | None, action: AfterClose) -> None:
    assert after_close(code) is action


def test_terminal_codes_are_the_contracts() -> None:
    assert frozenset({1008, 1009, 1002, 1007, 4003}) == TERMINAL_CLOSE_CODES


def test_refresh_comes_before_expiry_and_is_spread() -> None:
    rng = random.Random(3)
    delays = [refresh_delay(100.0, rng) for _ in range(500)]
    low, high = REFRESH_WINDOW
    assert all(100 * low <= d <= 100 * high for d in delays)
    # Jitter: a fleet of clients does not refresh in the same second.
    assert max(delays) - min(delays) > 10
    assert refresh_delay(-3.0, rng) == 0.0  # already expired: refresh at once


def test_a_failed_refresh_is_retried_within_the_remaining_time() -> None:
    assert refresh_retry_delay(2.0) == 0.5
    assert refresh_retry_delay(8.0) == 2.0
    assert refresh_retry_delay(3600.0) == 5.0
    assert refresh_retry_delay(-10.0) == 0.5


def _token(ttl: int, now: float | None = None) -> str:
    return TokenIssuer("HS256", "k" * 40).issue("u", "d", ttl, now=now).token


def test_the_edge_names_the_refusal_in_www_authenticate() -> None:
    for code in ("token_expired", "token_invalid", "token_revoked"):
        header = f'Bearer error="invalid_token", error_description="{code}"'
        assert handshake_error_code({"WWW-Authenticate": header}, _token(600)) == code


def test_without_the_header_the_tokens_own_exp_decides() -> None:
    expired = _token(10, now=time.time() - 100)
    assert handshake_error_code({}, expired) == "token_expired"
    assert handshake_error_code(None, _token(600)) == "token_invalid"
    assert handshake_error_code({}, "garbage") == "token_invalid"


def test_unverified_exp_reads_the_claim_and_survives_garbage() -> None:
    issued = TokenIssuer("HS256", "k" * 40).issue("u", "d", 600)
    assert unverified_exp(issued.token) == issued.claims.exp
    for bad in ("", "a.b", "a.!!!.c", "a.bnVsbA.c", "a.eyJleHAiOiB0cnVlfQ.c"):
        assert unverified_exp(bad) is None, bad
