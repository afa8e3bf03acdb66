"""The publisher's route table."""

from __future__ import annotations

from aiohttp import web

from roomcast_publisher import handlers
from roomcast_publisher.presence_api import room_presence


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/messages", handlers.publish_message)
    app.router.add_post("/v1/messages/batch", handlers.publish_batch)
    app.router.add_post("/push/new/score/message", handlers.push_score)
    app.router.add_get("/openapi.json", handlers.openapi_json)
    app.router.add_get("/v1/rooms/{room}/presence", room_presence)
