"""Admin keys: who may use /v1/admin/* and /console/, and what the logs call them.

Admin keys are not publishing keys. With none configured the console does not exist
(404), so a deployment that never set one exposes nothing. A key is logged only by
its id, a short hash: logs never hold a key.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from aiohttp import web

from roomcast_core.api import ApiError, bearer_token, key_matches
from roomcast_publisher.keys import SETTINGS_KEY

log = logging.getLogger("roomcast_publisher.admin")


def key_id(key: str) -> str:
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def require_console(request: web.Request) -> None:
    """404 unless admin keys are configured."""
    if not request.app[SETTINGS_KEY].publisher.admin_keys:
        raise ApiError(404, "not_found", "the operator console is off (no admin key is set)")


def require_admin(request: web.Request) -> str:
    """The id of the request's admin key; 404 when the console is off, 401 without a valid key."""
    require_console(request)
    presented = bearer_token(request)
    if presented is None or not key_matches(
        presented, request.app[SETTINGS_KEY].publisher.admin_keys
    ):
        raise ApiError(
            401,
            "unauthorized",
            "a valid admin key is required: Authorization: Bearer <admin key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return key_id(presented)


def audit(key: str, action: str, **fields: Any) -> None:
    """Every admin action, with the id of the key that asked for it."""
    # The action and key id in the text too: the text log format drops extra fields.
    log.info(
        "admin action %s by %s", action, key, extra={"key_id": key, "action": action, **fields}
    )
