"""GET /v1/history: its parameters, checked against the token's claims, without I/O.

The selection is a connection's: `room` and/or `topic`+`type` select exactly what
a connection in that room with that subscription receives (the hub's rules), so a
page read forward through `next` equals what such a live client got.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from roomcast_core.tokens import TokenClaims
from roomcast_edge.domain import protocol
from roomcast_edge.domain.hub import ANY_TYPE
from roomcast_edge.domain.positions import PositionError, parse_vector
from roomcast_edge.domain.replay import Selector

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class QueryError(Exception):
    """A request answered with a 4xx: status, code and a message saying why."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    selector: Selector
    since: dict[int, int] | None  # None with from_ms; neither: from the oldest held
    from_ms: int | None
    limit: int


def _name(query: Mapping[str, str], key: str) -> str | None:
    raw = query.get(key)
    if raw is None:
        return None
    text = raw.strip()
    if not text or len(text) > protocol.MAX_NAME_LENGTH:
        limit = protocol.MAX_NAME_LENGTH
        raise QueryError(400, f"invalid_{key}", f"{key} must be 1 to {limit} characters")
    return text


def _whole(text: str, key: str) -> int:
    digits = text.strip()
    if not digits.isdigit() or len(digits) > 16:
        raise QueryError(400, f"invalid_{key}", f"{key} must be a whole number, got {text[:32]!r}")
    return int(digits)


def parse_query(query: Mapping[str, str], claims: TokenClaims, now_ms: int) -> HistoryQuery:
    room, topic, type_ = _name(query, "room"), _name(query, "topic"), _name(query, "type")
    if room is None and topic is None:
        raise QueryError(400, "missing_selection", "name a room, a topic, or both")
    if type_ is not None and topic is None:
        raise QueryError(400, "invalid_type", "type needs a topic")
    if room is not None and not protocol.allowed(claims.rooms, room):
        raise QueryError(403, "room_not_allowed", f"room {room!r} is not allowed by the token")
    if topic is not None and not protocol.allowed(claims.topics, topic):
        raise QueryError(403, "topic_not_allowed", f"topic {topic!r} is not allowed by the token")
    rooms = frozenset([room] if room is not None else [])
    subs = frozenset([(topic, type_ or ANY_TYPE)] if topic is not None else [])

    since_text, from_text = query.get("since"), query.get("from_ms")
    if since_text is not None and from_text is not None:
        raise QueryError(400, "invalid_range", "give since or from_ms, not both")
    since: dict[int, int] | None = None
    from_ms: int | None = None
    if since_text is not None:
        try:
            since = parse_vector(since_text)
        except PositionError as exc:
            raise QueryError(400, "invalid_since", f"invalid since: {exc}") from None
    elif from_text is not None:
        from_ms = _whole(from_text, "from_ms")
        if from_ms > now_ms:
            raise QueryError(400, "invalid_from_ms", "from_ms lies in the future")
    else:
        since = {}
    limit_text = query.get("limit")
    limit = DEFAULT_LIMIT if limit_text is None else _whole(limit_text, "limit")
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError(400, "invalid_limit", f"limit must be from 1 to {MAX_LIMIT}")
    return HistoryQuery(Selector.everything(rooms, subs), since, from_ms, limit)
