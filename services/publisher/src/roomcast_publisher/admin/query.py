"""The filters the console's tail and look-back take from a query string."""

from __future__ import annotations

import re

from aiohttp import web

from roomcast_core.api import ApiError
from roomcast_publisher.domain.tail import DEFAULT_RATE, MAX_RATE, TailFilter
from roomcast_publisher.models import NAME_MAX

_NAME = re.compile(r"[^\x00-\x1f\x7f]+")


def _name(request: web.Request, field: str) -> str | None:
    value = request.query.get(field, "").strip()
    if not value or (field == "type" and value == "*"):
        return None  # no filter: every value passes
    if len(value) > NAME_MAX or not _NAME.fullmatch(value):
        raise ApiError(
            400, "invalid_request", f"{field}: 1 to {NAME_MAX} characters, no control characters"
        )
    return value


def tail_filter(request: web.Request) -> TailFilter:
    return TailFilter(_name(request, "room"), _name(request, "topic"), _name(request, "type"))


def bounded_int(request: web.Request, field: str, default: int, high: int) -> int:
    raw = request.query.get(field, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= high:
        raise ApiError(400, "invalid_request", f"{field}: a whole number from 1 to {high}")
    return value


def tail_rate(request: web.Request) -> int:
    return bounded_int(request, "rate", DEFAULT_RATE, MAX_RATE)
