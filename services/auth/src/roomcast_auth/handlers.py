"""v1 handlers: parse -> call the domain -> serialize. No Redis imports here."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web
from opentelemetry import trace

from roomcast_auth.domain.identity import Identity, InvalidIdentity, identity_for
from roomcast_auth.domain.service import AuthService, StoreUnavailable, TtlTooLarge
from roomcast_auth.keys import AUTH_METRICS_KEY, OPENAPI_KEY, SERVICE_KEY, SETTINGS_KEY
from roomcast_auth.models import (
    MAX_BODY_BYTES,
    HeartbeatResponse,
    RevokeResponse,
    RevokeTarget,
    TokenRequest,
    TokenResponse,
)
from roomcast_auth.refusals import RETRY_AFTER, Refusal
from roomcast_core.api import ApiError, bearer_token, parse_body, require_api_key, validate
from roomcast_core.jsonutil import json_response
from roomcast_core.tokens import IssuedToken, TokenError, jwks_document

tracer = trace.get_tracer("roomcast_auth")


def service_of(request: web.Request) -> AuthService:
    return request.app[SERVICE_KEY]


def redis_unavailable(exc: StoreUnavailable) -> Refusal:
    return Refusal(
        503,
        "redis_unavailable",
        f"the heartbeat and revocation store is unreachable, retry later ({exc})",
        "redis_unavailable",
        headers=RETRY_AFTER,
    )


def issue_token(
    request: web.Request,
    api: str,
    identity: Identity,
    *,
    ttl: int | None = None,
    rooms: Sequence[str] | None = None,
    topics: Sequence[str] | None = None,
) -> IssuedToken:
    """One span per token issued; the counter only counts tokens actually handed out."""
    with tracer.start_as_current_span("auth.issue_token") as span:
        span.set_attribute("roomcast.api", api)
        issued = service_of(request).issue(identity, ttl=ttl, rooms=rooms, topics=topics)
        span.set_attribute("roomcast.token.id", issued.claims.jti)
        span.set_attribute("roomcast.token.ttl", issued.claims.exp - issued.claims.iat)
    request.app[AUTH_METRICS_KEY].tokens_issued.inc()
    return issued


async def create_token(request: web.Request) -> web.Response:
    require_api_key(request, request.app[SETTINGS_KEY].auth.api_keys)
    body = await parse_body(request, TokenRequest, MAX_BODY_BYTES)
    try:
        identity = identity_for(body.device_id, body.user_id, body.is_login)
        issued = issue_token(
            request, "v1", identity, ttl=body.ttl, rooms=body.rooms, topics=body.topics
        )
    except (InvalidIdentity, TtlTooLarge) as exc:
        raise ApiError(400, "invalid_request", str(exc)) from None
    answer = TokenResponse(
        token=issued.token, token_id=issued.claims.jti, expires_at=issued.claims.exp
    )
    return json_response(answer.model_dump(), status=201)


async def heartbeat(request: web.Request) -> web.Response:
    token = bearer_token(request)
    if token is None:
        raise Refusal(
            401,
            "missing_token",
            "a token is required: Authorization: Bearer <token>",
            "missing_token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    with tracer.start_as_current_span("auth.heartbeat") as span:
        span.set_attribute("roomcast.api", "v1")
        try:
            beat = await service_of(request).heartbeat(token)
        except TokenError as exc:
            raise Refusal(
                401,
                "invalid_token",
                f"token refused: {exc}",
                exc.reason,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            ) from None
        except StoreUnavailable as exc:
            raise redis_unavailable(exc) from None
        span.set_attribute("roomcast.token.id", beat.jti)
    request.app[AUTH_METRICS_KEY].heartbeats.inc()
    return json_response(HeartbeatResponse(expires_in=beat.expires_in).model_dump())


def require_revocation_right(request: web.Request) -> None:
    """With API keys set, one is needed. Without any, revoking is open in local mode only:
    in production an unauthenticated revoke would let anyone cut anyone's connection."""
    settings = request.app[SETTINGS_KEY]
    if settings.auth.api_keys:
        require_api_key(request, settings.auth.api_keys)
    elif settings.production:
        raise Refusal(
            403,
            "revocation_disabled",
            "revocation needs API keys in production mode: set ROOMCAST_AUTH__API_KEYS",
            "revocation_disabled",
        )


async def revoke_token(request: web.Request) -> web.Response:
    require_revocation_right(request)
    target = validate(RevokeTarget, dict(request.match_info))
    try:
        revocation = await service_of(request).revoke(target.token_id)
    except StoreUnavailable as exc:
        raise redis_unavailable(exc) from None
    request.app[AUTH_METRICS_KEY].revocations.inc()
    answer = RevokeResponse(token_id=revocation.jti, revoked=True, revoked_until=revocation.until)
    return json_response(answer.model_dump())


async def jwks(request: web.Request) -> web.Response:
    """Public verification keys (none for HS256: a shared secret is never published)."""
    document = jwks_document(service_of(request).verifier)
    return json_response(document, headers={"Cache-Control": "public, max-age=300"})


async def openapi(request: web.Request) -> web.Response:
    return json_response(request.app[OPENAPI_KEY])
