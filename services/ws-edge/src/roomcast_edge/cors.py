"""CORS for the SSE transport: which pages of other origins may read its answers."""

from __future__ import annotations

from aiohttp import web

from roomcast_edge.keys import SETTINGS_KEY


def cors_headers(request: web.Request) -> dict[str, str]:
    """The headers letting a page of the request's Origin read the answer (CORS_ORIGINS)."""
    origin = request.headers.get("Origin")
    allowed = request.app[SETTINGS_KEY].edge.cors_origins
    if not origin or not allowed or not (origin.isascii() and origin.isprintable()):
        return {}
    if "*" not in allowed and origin not in allowed:
        return {}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
