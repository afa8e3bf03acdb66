"""HTTP API plumbing shared by auth and publisher: typed bodies, errors, API keys, CORS.

Request bodies are pydantic models; the same models produce the schemas in each
service's ``/openapi.json``, so what is documented is exactly what is enforced.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import orjson
from aiohttp import web
from opentelemetry import trace
from pydantic import BaseModel, ValidationError

from roomcast_core.errors import error_response
from roomcast_core.tokens import bearer_credentials

log = logging.getLogger(__name__)

Model = TypeVar("Model", bound=BaseModel)
_BODY_HEADERS = frozenset({"content-type", "content-length"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# orjson reads at most MAX_READ_DEPTH levels of nesting and writes at most
# MAX_WRITE_DEPTH; DEPTH_ERROR is its message for the former (the deep-payload tests in
# tests/integration/publisher/test_bad_input.py guard both against an orjson upgrade).
MAX_READ_DEPTH = 1024
MAX_WRITE_DEPTH = 254
DEPTH_ERROR = "depth limit exceeded"


class ApiError(Exception):
    """An answer of the v1 error shape, raised from anywhere in a handler."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers

    def response(self) -> web.Response:
        return error_response(self.status, self.code, self.message, self.headers)


def describe_validation_error(exc: ValidationError) -> str:
    """One readable sentence per problem: `field.path: what is wrong`."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


async def read_body(request: web.Request, max_bytes: int) -> bytes:
    """The whole body however it arrives (many segments, slowly, chunked); 413 as soon
    as more than max_bytes are announced or read, before the rest is buffered."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise ApiError(413, "payload_too_large", f"body is larger than {max_bytes} bytes")
    stream = request.content
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := await stream.readany():
            size += len(chunk)
            if size > max_bytes:
                raise ApiError(413, "payload_too_large", f"body is larger than {max_bytes} bytes")
            chunks.append(chunk)
    except web.RequestPayloadError:
        # e.g. Content-Encoding: gzip over bytes that are not gzip
        raise ApiError(
            400, "invalid_request", "the body cannot be decoded as its Content-Encoding says"
        ) from None
    except ConnectionResetError:
        # The client left before its body ended: nobody reads this answer, but it is
        # the client's doing, not a server error.
        raise ApiError(400, "invalid_request", "the body ended before it was complete") from None
    # One copy at the end instead of one per segment: linear in the body size.
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def read_json(request: web.Request, max_bytes: int) -> Any:
    """The parsed JSON body; 413 when larger than max_bytes, 400 when not JSON or nested
    deeper than the JSON codec allows."""
    raw = await read_body(request, max_bytes)
    if not raw:
        raise ApiError(400, "invalid_json", "request body is empty; a JSON object is expected")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if DEPTH_ERROR in str(exc):
            raise ApiError(
                400, "payload_too_deep", f"body is nested deeper than {MAX_READ_DEPTH} levels"
            ) from None
        raise ApiError(400, "invalid_json", f"body is not valid JSON: {exc}") from None


def validate(model: type[Model], data: Any) -> Model:
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_request", "body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, "invalid_request", describe_validation_error(exc)) from None


async def parse_body(request: web.Request, model: type[Model], max_bytes: int) -> Model:
    return validate(model, await read_json(request, max_bytes))


def bearer_token(request: web.Request) -> str | None:
    return bearer_credentials(request.headers.get("Authorization", ""))


def key_matches(presented: str | None, keys: Sequence[str]) -> bool:
    """Constant-time comparison against every key, so timing says nothing about which."""
    # Header bytes that are not ASCII arrive as surrogate escapes, which cannot be
    # encoded; such a value is no key.
    if presented is None or not presented.isascii():
        return False
    candidate = presented.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(candidate, key.encode())
    return matched


def require_api_key(request: web.Request, keys: Sequence[str]) -> None:
    """401 unless API keys are off or the request bears one of them."""
    if keys and not key_matches(bearer_token(request), keys):
        raise ApiError(
            401,
            "unauthorized",
            "a valid API key is required: Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """ApiError becomes its JSON answer; anything unexpected is logged and is a 500."""
    try:
        return await handler(request)
    except ApiError as exc:
        if exc.status >= 500:
            # A refusal of the server's own making (Kafka or Redis away): the request's
            # span keeps why, not only that it failed.
            span = trace.get_current_span()
            span.set_attribute("error.type", exc.code)
            span.record_exception(exc)
        return exc.response()
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            code = exc.reason.lower().replace(" ", "_")
            # aiohttp's own 404/405 carry a text Content-Type; the JSON body sets its own.
            headers = {k: v for k, v in exc.headers.items() if k.lower() not in _BODY_HEADERS}
            return error_response(exc.status, code, exc.reason, headers)
        raise
    except Exception:
        log.exception("unhandled error", extra={"path": request.path})
        return error_response(500, "internal_error", "internal error")


def cors_middleware(origins: Sequence[str]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Allow browser calls from the listed origins ("*" for any); answers preflights."""
    allowed = frozenset(origins)

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        # An origin is ASCII (RFC 6454); anything else could not be echoed in a header.
        permitted = (
            origin is not None and origin.isascii() and ("*" in allowed or origin in allowed)
        )
        if (
            request.method == "OPTIONS"
            and permitted
            and "Access-Control-Request-Method" in request.headers
        ):
            response: web.StreamResponse = web.Response(status=204)
        else:
            response = await handler(request)
        if permitted and origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response.headers["Access-Control-Max-Age"] = "600"
        return response

    return cors


# ---- OpenAPI ---------------------------------------------------------------

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}


def schema_of(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    """A $ref to the model's schema, registering it (and its parts) in components."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def openapi_document(
    title: str, version: str, paths: dict[str, Any], components: dict[str, Any]
) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR_SCHEMA, **components},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def error_responses(*statuses: int) -> dict[str, Any]:
    text = {
        400: "invalid input",
        401: "missing or invalid credentials",
        404: "not found",
        413: "payload too large",
        503: "a dependency is unavailable; retry later",
    }
    return {
        str(s): {
            "description": text.get(s, "error"),
            **json_content({"$ref": "#/components/schemas/Error"}),
        }
        for s in statuses
    }
