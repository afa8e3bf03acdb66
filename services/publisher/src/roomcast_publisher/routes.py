"""The publisher's route table."""

from __future__ import annotations

from aiohttp import web

from roomcast_publisher import handlers


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/messages", handlers.publish_message)
    app.router.add_post("/v1/messages/batch", handlers.publish_batch)
    app.router.add_post("/push/new/score/message", handlers.push_score)
    app.router.add_get("/openapi.json", handlers.openapi_json)
