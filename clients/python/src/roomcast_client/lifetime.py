"""Token lifetime and close codes: when to refresh, what to do after a close.

Pure policy, no I/O, shared by the client and its tests. The edge sends
`expires_in` in `connected` and in every `refresh` reply; the client sends the next
`refresh` at a random point between 70 % and 85 % of that, so a fleet of clients
given tokens at the same moment does not refresh in the same second.
"""

from __future__ import annotations

import base64
import enum
import random
import re
import time
from collections.abc import Mapping

import orjson

# Fraction of the remaining lifetime after which a refresh is sent (uniform jitter).
REFRESH_WINDOW = (0.70, 0.85)
# A failed refresh is retried after this many seconds at most (sooner for short tokens).
REFRESH_RETRY_MAX = 5.0

CLOSE_HEARTBEAT = 4000
CLOSE_TOKEN_EXPIRED = 4001
CLOSE_SLOW = 4008
CLOSE_RESTART = 1012
CLOSE_OPERATOR = 4003
# After these the same input or the same token cannot succeed: never reconnect. 4003
# (closed by operator) too: only a new decision of the application may reconnect.
TERMINAL_CLOSE_CODES = frozenset({1008, 1009, 1002, 1007, CLOSE_OPERATOR})


class AfterClose(enum.Enum):
    RECONNECT = "reconnect"  # with backoff and `since`
    NEW_TOKEN = "new_token"  # noqa: S105 - an action, not a secret; fetch a fresh token, reconnect at once with `since`
    STOP = "stop"


def after_close(code: int | None) -> AfterClose:
    if code in TERMINAL_CLOSE_CODES:
        return AfterClose.STOP
    if code == CLOSE_TOKEN_EXPIRED:
        return AfterClose.NEW_TOKEN
    return AfterClose.RECONNECT


def refresh_delay(expires_in: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before refreshing a token that expires in `expires_in` seconds."""
    low, high = REFRESH_WINDOW
    return max(0.0, expires_in) * (rng or random).uniform(low, high)


def refresh_retry_delay(expires_in: float) -> float:
    """After a failed refresh: a few tries remain before the edge's grace runs out."""
    return min(REFRESH_RETRY_MAX, max(0.5, expires_in / 4))


_DESCRIPTION = re.compile(r'error_description="([a-z_]+)"')


def handshake_error_code(headers: Mapping[str, str] | None, token: str) -> str:
    """token_expired, token_invalid or token_revoked for a refused (401) upgrade.

    The edge names the code in `WWW-Authenticate` (RFC 6750's error_description);
    when a proxy dropped it, a token whose own `exp` has passed counts as expired.
    """
    header = (headers or {}).get("WWW-Authenticate", "")
    match = _DESCRIPTION.search(header)
    if match:
        return match.group(1)
    exp = unverified_exp(token)
    if exp is not None and exp <= time.time():
        return "token_expired"
    return "token_invalid"


def unverified_exp(token: str) -> float | None:
    """The `exp` claim read without verification (for scheduling only, never trust)."""
    try:
        body = token.split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (IndexError, ValueError, orjson.JSONDecodeError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None
