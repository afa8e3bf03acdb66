"""The publisher's OpenAPI 3 document, built from the models that validate requests."""

from __future__ import annotations

from typing import Any

from roomcast_core.api import error_responses, json_content, openapi_document, schema_of
from roomcast_core.settings import Settings
from roomcast_publisher.models import (
    MAX_PAYLOAD_DEPTH,
    BatchIn,
    BatchOut,
    CompatErrorOut,
    MessageIn,
    ReceiptOut,
    ScoreIn,
    ScoreOut,
)
from roomcast_publisher.presence_api import presence_path


def openapi(settings: Settings) -> dict[str, Any]:
    components: dict[str, Any] = {}
    security: list[dict[str, list[str]]] = [{"bearer": []}] if settings.publisher.api_keys else []
    limit = settings.publisher.max_payload_bytes
    compat_error = json_content(schema_of(CompatErrorOut, components))
    paths = {
        "/v1/messages": {
            "post": {
                "summary": "Publish one message",
                "description": (
                    "Answers 202 only after Kafka acknowledged the record (acks=all). "
                    f"A payload over {limit} bytes serialized is 413, one nested deeper "
                    f"than {MAX_PAYLOAD_DEPTH} levels is 400 payload_too_deep. A 503 means the "
                    "message was not published; retry after Retry-After. A message_id "
                    "seen within the idempotency window returns the first result "
                    "(header Idempotent-Replayed: true) and is not published again."
                ),
                "security": security,
                "requestBody": {"required": True, **json_content(schema_of(MessageIn, components))},
                "responses": {
                    "202": {
                        "description": "published",
                        **json_content(schema_of(ReceiptOut, components)),
                    },
                    **error_responses(400, 401, 413, 503),
                    "409": {"description": "the same message_id is being published right now"},
                },
            }
        },
        "/v1/messages/batch": {
            "post": {
                "summary": f"Publish up to {settings.publisher.max_batch} messages in order",
                "description": (
                    "All messages are validated first (size and depth included); one bad "
                    "message is 400 (or 413) naming its index and nothing is published. "
                    "The body may arrive in any number of reads or chunked. Then every message is "
                    "published in order and reported in results, each with its own status: "
                    "202 when all were published, 207 when only some were, else 503 (with "
                    "Retry-After) or 409."
                ),
                "security": security,
                "requestBody": {"required": True, **json_content(schema_of(BatchIn, components))},
                "responses": {
                    "202": {
                        "description": "all published",
                        **json_content(schema_of(BatchOut, components)),
                    },
                    "207": {
                        "description": "some published; see each result's status",
                        **json_content(schema_of(BatchOut, components)),
                    },
                    **error_responses(400, 401, 413, 503),
                },
            }
        },
        "/push/new/score/message": {
            "post": {
                "summary": "[compat] Push a score message",
                "description": (
                    "Delivered as a push with type 'score', no topic, the room if given "
                    "and the message string as payload."
                ),
                "security": security,
                "requestBody": {"required": True, **json_content(schema_of(ScoreIn, components))},
                "responses": {
                    "200": {"description": "sent", **json_content(schema_of(ScoreOut, components))},
                    "400": {"description": "missing message or bad JSON", **compat_error},
                    "401": {"description": "missing or invalid API key", **compat_error},
                    "413": {"description": "message too large", **compat_error},
                    "503": {"description": "not published; retry later", **compat_error},
                },
            }
        },
    }
    paths["/v1/rooms/{room}/presence"] = presence_path(security, components)
    return openapi_document("roomcast publisher", "1.0.0", paths, components)
