"""The compatible API of the earlier Go service: same parameters, same `{"data": …}` answers."""

from __future__ import annotations

from aiohttp import web
from opentelemetry import trace

from roomcast_auth.domain.identity import InvalidIdentity, identity_for, parse_flag
from roomcast_auth.domain.service import StoreUnavailable
from roomcast_auth.handlers import issue_token, service_of
from roomcast_auth.keys import AUTH_METRICS_KEY, SETTINGS_KEY
from roomcast_auth.models import CompatTokenQuery
from roomcast_auth.refusals import RETRY_AFTER, CompatRefusal
from roomcast_core.api import ApiError, bearer_token, key_matches, validate
from roomcast_core.jsonutil import json_response
from roomcast_core.tokens import TokenError

tracer = trace.get_tracer("roomcast_auth")

INVALID_PARAMETERS = "Invalid request parameters"
HEARTBEAT_REFUSED = "token error"


async def get_token(request: web.Request) -> web.Response:
    keys = request.app[SETTINGS_KEY].auth.api_keys
    if keys and not key_matches(bearer_token(request), keys):
        raise CompatRefusal(
            401, "Unauthorized", "unauthorized", headers={"WWW-Authenticate": "Bearer"}
        )
    try:
        query = validate(CompatTokenQuery, dict(request.query))
        identity = identity_for(query.deviceId, query.userId, parse_flag(query.isLogin))
    except (ApiError, InvalidIdentity):
        raise CompatRefusal(400, INVALID_PARAMETERS, "invalid_request") from None
    issued = issue_token(request, "compat", identity)
    return json_response({"data": issued.token})


async def heartbeat(request: web.Request) -> web.Response:
    token = request.query.get("token", "")
    with tracer.start_as_current_span("auth.heartbeat") as span:
        span.set_attribute("roomcast.api", "compat")
        try:
            beat = await service_of(request).heartbeat(token)
        except TokenError as exc:
            raise CompatRefusal(401, HEARTBEAT_REFUSED, exc.reason) from None
        except StoreUnavailable:
            raise CompatRefusal(
                503,
                "heartbeat store unavailable, retry later",
                "redis_unavailable",
                headers=RETRY_AFTER,
            ) from None
        span.set_attribute("roomcast.token.id", beat.jti)
    request.app[AUTH_METRICS_KEY].heartbeats.inc()
    return json_response({})
