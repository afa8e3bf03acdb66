"""The v1 error shape: {"error": {"code": "<snake_case>", "message": "<human text>"}}."""

from __future__ import annotations

from aiohttp import web

from roomcast_core.jsonutil import json_response


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )
