"""The client protocol: parse request frames and connect parameters, build replies.

Requests (JSON text frames):
    {"request_id": "r1", "action": "subscribe", "params": {"topic": "order", "type": "event"}}
    actions: subscribe, unsubscribe (topic, type?, since?, rewind?), join, leave (room,
    since?, rewind?), ping,
    refresh (token), presence (room)
Every request gets exactly one reply:
    {"request_id", "action", "status": "ok"|"fail", "error_message", "timestamp"}
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from roomcast_edge.domain.hub import ANY_TYPE
from roomcast_edge.domain.positions import PositionError, parse_vector

ACTIONS = ("subscribe", "unsubscribe", "ping", "join", "leave", "refresh", "presence")
# Topic, type and room names are short identifiers; refuse anything that is not.
MAX_NAME_LENGTH = 256
# Connect-time refusals listed in `connected`, at most: a long list says no more.
MAX_REFUSED_LISTED = 64
# Why a connect-time room or subscription was refused (`refused_reasons` in `connected`).
NOT_ALLOWED = "not_allowed"  # outside the token's rooms or topics claim
TOO_MANY_ROOMS = "too_many_rooms"  # past MAX_ROOMS
TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"  # past MAX_SUBSCRIPTIONS
INVALID = "invalid"  # not a readable name

# (what the client asked for, as it was written; why it was refused)
Refusal = tuple[str, str]
# `rewind` asks for at most this many of the latest messages.
MAX_REWIND = 100


class RequestError(Exception):
    """A request that gets a "fail" reply; carries what can be echoed back."""

    def __init__(self, message: str, request_id: Any = "", action: str = "") -> None:
        super().__init__(message)
        self.request_id = request_id
        self.action = action


@dataclass(frozen=True, slots=True)
class Request:
    request_id: Any
    action: str
    topic: str | None = None
    type: str = ANY_TYPE
    room: str | None = None
    since: dict[int, int] | None = None
    token: str | None = None  # refresh only
    rewind: int | None = None  # subscribe and join only


def now_ms() -> int:
    return int(time.time() * 1000)


def _name(value: Any, what: str, request_id: Any, action: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RequestError(f"missing or empty {what}", request_id, action)
    text = str(value).strip()
    if not text:
        raise RequestError(f"missing or empty {what}", request_id, action)
    if len(text) > MAX_NAME_LENGTH:
        raise RequestError(
            f"{what} is longer than {MAX_NAME_LENGTH} characters", request_id, action
        )
    return text


def _since(params: Mapping[str, Any], request_id: Any, action: str) -> dict[int, int] | None:
    raw = params.get("since")
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise RequestError("since must be a position vector string", request_id, action)
    try:
        return parse_vector(raw)
    except PositionError as exc:
        raise RequestError(f"invalid since: {exc}", request_id, action) from None


def parse_rewind(value: Any) -> int:
    """A rewind count 0..MAX_REWIND (an int, or its decimal text from a URL); ValueError."""
    if isinstance(value, str) and value.strip().isdigit() and len(value) <= 8:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"rewind must be an integer from 0 to {MAX_REWIND}")
    if not 0 <= value <= MAX_REWIND:
        raise ValueError(f"rewind must be from 0 to {MAX_REWIND}, got {value}")
    return value


def _rewind(params: Mapping[str, Any], request_id: Any, action: str) -> int | None:
    raw = params.get("rewind")
    if raw is None:
        return None
    if isinstance(raw, str):
        raise RequestError(f"rewind must be an integer from 0 to {MAX_REWIND}", request_id, action)
    try:
        rewind = parse_rewind(raw)
    except ValueError as exc:
        raise RequestError(str(exc), request_id, action) from None
    if params.get("since") is not None:
        raise RequestError("since and rewind cannot be combined", request_id, action)
    return rewind


def parse_request(data: str | bytes) -> Request:
    """A Request, or RequestError with a message fit for error_message."""
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise RequestError("invalid JSON") from None
    if not isinstance(body, dict):
        raise RequestError("request must be a JSON object")
    request_id = body.get("request_id", "")
    if not isinstance(request_id, str | int) or isinstance(request_id, bool):
        request_id = ""
    action = body.get("action")
    if not isinstance(action, str) or not action:
        raise RequestError("missing action", request_id)
    if action not in ACTIONS:
        raise RequestError(
            f"unknown action {action[:64]!r}; expected one of {', '.join(ACTIONS)}",
            request_id,
            action[:64],
        )
    if action == "ping":
        return Request(request_id, action)
    params = body.get("params")
    if not isinstance(params, dict):
        raise RequestError("params must be a JSON object", request_id, action)
    if action == "refresh":
        token = params.get("token")
        if not isinstance(token, str) or not token:
            raise RequestError(
                "params.token must be the new token (a non-empty string)", request_id, action
            )
        return Request(request_id, action, token=token)
    if action in ("subscribe", "unsubscribe"):
        topic = _name(params.get("topic"), "topic", request_id, action)
        raw_type = params.get("type")
        type_ = ANY_TYPE if raw_type in (None, "") else _name(raw_type, "type", request_id, action)
        if action == "unsubscribe":
            return Request(request_id, action, topic=topic, type=type_)
        since = _since(params, request_id, action)
        rewind = _rewind(params, request_id, action)
        return Request(request_id, action, topic=topic, type=type_, since=since, rewind=rewind)
    room = _name(params.get("room"), "room", request_id, action)
    if action != "join":
        return Request(request_id, action, room=room)
    since = _since(params, request_id, action)
    rewind = _rewind(params, request_id, action)
    return Request(request_id, action, room=room, since=since, rewind=rewind)


def reply(
    request_id: Any, action: str, error: str = "", extra: Mapping[str, Any] | None = None
) -> bytes:
    body: dict[str, Any] = {
        "request_id": request_id,
        "action": action,
        "status": "fail" if error else "ok",
        "error_message": error,
        "timestamp": now_ms(),
    }
    if extra:
        body.update(extra)
    return orjson.dumps(body)


def connected(
    connection_id: str,
    rooms: list[str],
    position: str,
    refused: list[Refusal],
    recovered: bool | None,
    expires_in: int | None = None,
) -> bytes:
    """`refused` lists the names alone (its shape since the first release); each one's
    reason is under `refused_reasons`, keyed by the name."""
    body: dict[str, Any] = {
        "action": "connected",
        "status": "ok",
        "connection_id": connection_id,
        "rooms": rooms,
        "position": position,
        "timestamp": now_ms(),
    }
    if refused:
        body["refused"] = [name for name, _ in refused]
        body["refused_reasons"] = dict(refused)
    if recovered is not None:
        body["recovered"] = recovered
    if expires_in is not None:
        body["expires_in"] = expires_in
    return orjson.dumps(body)


# ---- connect parameters ----------------------------------------------------


def _items(raw: str) -> Iterator[str]:
    """The comma-separated items of `raw`, one at a time: a reader that stops early
    costs nothing for the rest of the text."""
    start = 0
    while True:
        end = raw.find(",", start)
        if end < 0:
            yield raw[start:]
            return
        yield raw[start:end]
        start = end + 1


def parse_room_ids(raw: str | None, max_rooms: int) -> tuple[list[str], list[Refusal]]:
    """roomIds: comma-separated, trimmed, de-duplicated (first wins), cut to max_rooms
    -> (rooms, refusals): the rooms cut and the names too long to be rooms.

    Reading stops once MAX_REFUSED_LISTED refusals are listed: a long list costs no
    more than a short one.
    """
    rooms: list[str] = []
    refused: list[Refusal] = []
    if not raw:
        return rooms, refused
    seen: set[str] = set()
    for part in _items(raw):
        room = part.strip()
        if not room or room in seen:
            continue
        if len(room) > MAX_NAME_LENGTH:
            refused.append((room[:MAX_NAME_LENGTH], INVALID))
        elif len(rooms) < max_rooms:
            rooms.append(room)
        else:
            refused.append((room, TOO_MANY_ROOMS))
        seen.add(room)
        if len(refused) >= MAX_REFUSED_LISTED:
            break
    return rooms, refused


def parse_topic_specs(
    raw: str | None, limit: int
) -> tuple[list[tuple[str, str, str]], list[Refusal]]:
    """topics=order:event,quotes:* -> ([(spec, topic, type)], [refusals]).

    The type follows the last ":"; no ":" (or an empty type) means every type.
    Linear in the length of `raw`: the first `limit` distinct specs are kept, the
    unreadable ones and those past the limit are refused, and reading stops once
    MAX_REFUSED_LISTED refusals are listed.
    """
    specs: list[tuple[str, str, str]] = []
    refused: list[Refusal] = []
    seen: set[tuple[str, str]] = set()
    for part in _items(raw or ""):
        if len(specs) >= limit and len(refused) >= MAX_REFUSED_LISTED:
            break
        spec = part.strip()
        if not spec:
            continue
        topic, sep, type_ = spec.rpartition(":")
        if not sep:
            topic, type_ = spec, ANY_TYPE
        topic, type_ = topic.strip(), type_.strip() or ANY_TYPE
        if not topic or len(topic) > MAX_NAME_LENGTH or len(type_) > MAX_NAME_LENGTH:
            if len(refused) < MAX_REFUSED_LISTED:
                refused.append((spec[:MAX_NAME_LENGTH], INVALID))
            continue
        if (topic, type_) in seen:
            continue
        seen.add((topic, type_))
        if len(specs) < limit:
            specs.append((spec, topic, type_))
        elif len(refused) < MAX_REFUSED_LISTED:
            refused.append((spec, TOO_MANY_SUBSCRIPTIONS))
    return specs, refused


def allowed(claim: tuple[str, ...] | None, name: str) -> bool:
    """A rooms/topics claim limits what a token may use; no claim allows everything."""
    return claim is None or name in claim or "*" in claim
