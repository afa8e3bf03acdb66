"""The console's publish form: POST /v1/admin/messages and /v1/admin/messages/batch.

The same requests, checks and answers as /v1/messages and /v1/messages/batch, with
an admin key instead of a publishing key, and logged.
"""

from __future__ import annotations

from aiohttp import web

from roomcast_publisher.admin.auth import audit, require_admin
from roomcast_publisher.handlers import publish_many, publish_one


async def publish(request: web.Request) -> web.Response:
    audit(require_admin(request), "publish")
    return await publish_one(request)


async def publish_batch(request: web.Request) -> web.Response:
    audit(require_admin(request), "publish_batch")
    return await publish_many(request)
