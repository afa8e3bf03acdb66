"""The OpenAPI 3 document of the auth service, built from the models that validate requests."""

from __future__ import annotations

from typing import Any

from roomcast_auth.models import (
    MAX_ID_LENGTH,
    CompatData,
    CompatTokenQuery,
    HeartbeatResponse,
    RevokeResponse,
    RevokeTarget,
    TokenRequest,
    TokenResponse,
)
from roomcast_core.api import error_responses, json_content, openapi_document, schema_of
from roomcast_core.settings import Settings

BEARER_KEY: list[dict[str, list[str]]] = [{"bearer": []}]


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, **json_content(schema)}


def _text(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


def _status(description: str) -> dict[str, Any]:
    return _ok(description, {"type": "object", "properties": {"status": {"type": "string"}}})


def build_openapi(settings: Settings) -> dict[str, Any]:
    components: dict[str, Any] = {}
    token_request = schema_of(TokenRequest, components)
    # The cap is configuration, not code: publish the value this process enforces.
    ttl = components["TokenRequest"]["properties"]["ttl"]
    for option in ttl.get("anyOf", [ttl]):
        if option.get("type") == "integer":
            option["maximum"] = settings.jwt.max_ttl
    compat_data = schema_of(CompatData, components)
    query = CompatTokenQuery.model_json_schema()["properties"]
    token_id = RevokeTarget.model_json_schema()["properties"]["token_id"]
    keys_note = " Needs Authorization: Bearer <API key> when ROOMCAST_AUTH__API_KEYS is set."
    paths: dict[str, Any] = {
        "/get/token": {
            "get": {
                "summary": "Issue a token (compatible API)",
                "description": "isLogin=true needs userId; otherwise deviceId is needed."
                + keys_note,
                "security": BEARER_KEY,
                "parameters": [
                    _query(
                        "deviceId",
                        query["deviceId"],
                        f"device id, at most {MAX_ID_LENGTH} characters",
                    ),
                    _query(
                        "userId", query["userId"], f"user id, at most {MAX_ID_LENGTH} characters"
                    ),
                    _query(
                        "isLogin",
                        {"type": "string", "maxLength": 5},
                        "true for a logged-in user (also 1/t/True...); absent means false",
                    ),
                ],
                "responses": {
                    "200": _ok("the token in data", compat_data),
                    "400": _ok('{"data": "Invalid request parameters"}', compat_data),
                    "401": _ok('{"data": "Unauthorized"}: API key missing or wrong', compat_data),
                },
            }
        },
        "/v1/tokens": {
            "post": {
                "summary": "Issue a token",
                "description": "rooms/topics, when given, limit what the connection may join or subscribe to."
                + keys_note,
                "security": BEARER_KEY,
                "requestBody": {"required": True, **json_content(token_request)},
                "responses": {
                    "201": _ok("the token", schema_of(TokenResponse, components)),
                    **error_responses(400, 401, 413),
                },
            }
        },
        "/heartbeat": {
            "get": {
                "summary": "Record a heartbeat (compatible API)",
                "parameters": [
                    {"name": "token", "in": "query", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": _ok("recorded", {"type": "object", "maxProperties": 0}),
                    "401": _ok(
                        '{"data": "token error"}: bad, expired or revoked token', compat_data
                    ),
                    "503": _ok("Redis is unreachable; retry later", compat_data),
                },
            }
        },
        "/v1/heartbeat": {
            "post": {
                "summary": "Record a heartbeat for the bearer token",
                "description": "Authorization: Bearer <connection token>.",
                "security": BEARER_KEY,
                "responses": {
                    "200": _ok("recorded", schema_of(HeartbeatResponse, components)),
                    **error_responses(401, 503),
                },
            }
        },
        "/v1/tokens/{token_id}/revoke": {
            "post": {
                "summary": "Revoke a token by its token_id (jti)",
                "description": "Kept for ROOMCAST_JWT__MAX_TTL (+ leeway) seconds."
                + keys_note
                + " Without API keys, only allowed in local mode (403 in production).",
                "security": BEARER_KEY,
                "parameters": [
                    {"name": "token_id", "in": "path", "required": True, "schema": token_id}
                ],
                "responses": {
                    "200": _ok("revoked", schema_of(RevokeResponse, components)),
                    **error_responses(400, 401, 403, 503),
                },
            }
        },
        "/.well-known/jwks.json": {
            "get": {
                "summary": "Public verification keys (empty for HS256)",
                "responses": {"200": _ok("a JWKS document", {"type": "object"})},
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": _ok("OpenAPI 3 document", {"type": "object"})},
            }
        },
        "/health": {
            "get": {"summary": "Liveness (compatible)", "responses": {"200": _status("healthy")}}
        },
        "/livez": {"get": {"summary": "Process alive", "responses": {"200": _status("alive")}}},
        "/readyz": {
            "get": {
                "summary": "Ready: Redis answers and not draining",
                "responses": {"200": _status("ready"), "503": _status("not ready, with reasons")},
            }
        },
        "/metrics": {
            "get": {"summary": "Prometheus metrics", "responses": {"200": _text("metrics")}}
        },
    }
    return openapi_document("roomcast auth", "1.0.0", paths, components)
