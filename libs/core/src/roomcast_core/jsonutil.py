"""JSON with orjson at the HTTP edges."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web


def json_response(
    body: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        content_type="application/json",
        headers=headers,
    )
