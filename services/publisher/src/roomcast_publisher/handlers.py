"""HTTP handlers: parse, call the domain, serialize. No Redis or Kafka in here."""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from roomcast_core.api import ApiError, read_json, require_api_key, validate
from roomcast_core.jsonutil import json_response
from roomcast_core.settings import Settings
from roomcast_publisher.domain.publishing import Draft, Outcome, Reason, Refusal
from roomcast_publisher.keys import PUBLISHER_KEY, SETTINGS_KEY
from roomcast_publisher.models import (
    BATCH_BODY_MAX,
    ENVELOPE_BYTES,
    ScoreIn,
    batch_drafts,
    check_payload,
    check_unique_ids,
    message_draft,
)
from roomcast_publisher.openapi import openapi

STATUS = {
    Reason.KAFKA_UNAVAILABLE: 503,
    Reason.IDEMPOTENCY_UNAVAILABLE: 503,
    Reason.IN_PROGRESS: 409,
    Reason.OUTCOME_UNKNOWN: 504,
}
RETRY_LATER = frozenset({503, 504})


def retry_after(settings: Settings) -> str:
    """Seconds a client should wait: about one produce bound, at least one."""
    return str(max(1, math.ceil(settings.kafka.request_timeout / 2)))


def _receipt_body(outcome: Outcome) -> dict[str, Any]:
    assert not isinstance(outcome, Refusal)
    return {
        "message_id": outcome.message_id,
        "position": outcome.position,
        "receive_time": outcome.receive_time,
    }


def _refusal_headers(refusal: Refusal, settings: Settings) -> dict[str, str]:
    return {"Retry-After": retry_after(settings)} if STATUS[refusal.reason] in RETRY_LATER else {}


async def publish_message(request: web.Request) -> web.Response:
    require_api_key(request, request.app[SETTINGS_KEY].publisher.api_keys)
    return await publish_one(request)


async def publish_one(request: web.Request) -> web.Response:
    """POST /v1/messages once the caller is known (also the console's publish)."""
    settings = request.app[SETTINGS_KEY]
    limits = settings.publisher
    data = await read_json(request, limits.max_payload_bytes + ENVELOPE_BYTES)
    draft = message_draft(data)
    check_payload(draft.payload, limits.max_payload_bytes)
    [outcome] = await request.app[PUBLISHER_KEY].publish([draft])
    if isinstance(outcome, Refusal):
        raise ApiError(
            STATUS[outcome.reason],
            outcome.reason.value,
            outcome.detail,
            _refusal_headers(outcome, settings),
        )
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else None
    return json_response(_receipt_body(outcome), status=202, headers=headers)


async def publish_batch(request: web.Request) -> web.Response:
    require_api_key(request, request.app[SETTINGS_KEY].publisher.api_keys)
    return await publish_many(request)


async def publish_many(request: web.Request) -> web.Response:
    """Validate every message first (any bad one: 400/413 naming it, nothing published),
    then publish all in order and report each: 202 all published, 207 otherwise, unless
    every message failed alike (then that status: 503, 504 or 409)."""
    settings = request.app[SETTINGS_KEY]
    limits = settings.publisher
    body_limit = min(BATCH_BODY_MAX, limits.max_batch * (limits.max_payload_bytes + ENVELOPE_BYTES))
    data = await read_json(request, body_limit)
    # Count before validating: a huge batch should not cost a full validation first.
    messages = data.get("messages") if isinstance(data, dict) else None
    if isinstance(messages, list) and len(messages) > limits.max_batch:
        raise ApiError(
            400,
            "invalid_request",
            f"messages: at most {limits.max_batch} per batch, got {len(messages)}",
        )
    drafts = batch_drafts(data)
    for index, draft in enumerate(drafts):
        check_payload(draft.payload, limits.max_payload_bytes, f"messages.{index}.payload")
    check_unique_ids(drafts)

    outcomes = await request.app[PUBLISHER_KEY].publish(drafts)
    results = [_batch_result(outcome) for outcome in outcomes]
    refusals = [o for o in outcomes if isinstance(o, Refusal)]
    statuses = {STATUS[r.reason] for r in refusals}
    if not refusals:
        status = 202
    elif len(refusals) == len(outcomes) and len(statuses) == 1:
        [status] = statuses
    else:
        status = 207
    headers = {"Retry-After": retry_after(settings)} if statuses & RETRY_LATER else {}
    return json_response({"results": results}, status=status, headers=headers)


def _batch_result(outcome: Outcome) -> dict[str, Any]:
    if isinstance(outcome, Refusal):
        return {
            "status": STATUS[outcome.reason],
            "message_id": outcome.message_id,
            "error": {"code": outcome.reason.value, "message": outcome.detail},
        }
    return {"status": 202, **_receipt_body(outcome)}


async def push_score(request: web.Request) -> web.Response:
    """[compat] {"message", "roomId"?} -> 200 {"message": "message sent"}; errors are
    {"error": "<text>"} as they always were on this path."""
    settings = request.app[SETTINGS_KEY]
    limits = settings.publisher
    try:
        require_api_key(request, limits.api_keys)
        data = await read_json(request, limits.max_payload_bytes + ENVELOPE_BYTES)
        body = validate(ScoreIn, data)
        if not body.message:
            raise ApiError(400, "invalid_request", "message is required")
        check_payload(body.message, limits.max_payload_bytes, "message")
    except ApiError as exc:
        return json_response({"error": exc.message}, status=exc.status, headers=exc.headers)
    draft = Draft(topic=None, type="score", room=body.roomId or None, payload=body.message)
    [outcome] = await request.app[PUBLISHER_KEY].publish([draft])
    if isinstance(outcome, Refusal):
        return json_response(
            {"error": outcome.detail},
            status=STATUS[outcome.reason],
            headers=_refusal_headers(outcome, settings),
        )
    return json_response({"message": "message sent"})


async def openapi_json(request: web.Request) -> web.Response:
    return json_response(openapi(request.app[SETTINGS_KEY]))
