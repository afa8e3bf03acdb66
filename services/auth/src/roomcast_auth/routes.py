"""The route table of the auth service (health routes come from roomcast_core.health)."""

from __future__ import annotations

from aiohttp import web

from roomcast_auth import compat, handlers

ROUTES = [
    web.get("/get/token", compat.get_token),
    web.get("/heartbeat", compat.heartbeat),
    web.post("/v1/tokens", handlers.create_token),
    web.post("/v1/heartbeat", handlers.heartbeat),
    web.post("/v1/tokens/{token_id}/revoke", handlers.revoke_token),
    web.get("/.well-known/jwks.json", handlers.jwks),
    web.get("/openapi.json", handlers.openapi),
]
