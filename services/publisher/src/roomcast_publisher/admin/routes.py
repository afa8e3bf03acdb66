"""The console's routes: /console/ and /v1/admin/*."""

from __future__ import annotations

from aiohttp import web

from roomcast_publisher.admin import edges_api, lookups_api, page, publish_api, tail_api, users_api
from roomcast_publisher.admin.state import CONSOLE_KEY


def add_admin_routes(app: web.Application) -> None:
    app.router.add_get("/console", page.console_redirect)
    app.router.add_get("/console/", page.console_file)
    app.router.add_get("/console/{name}", page.console_file)
    app.router.add_get("/v1/admin/edges", edges_api.list_edges)
    app.router.add_get("/v1/admin/edges/history", edges_api.edges_history)
    app.router.add_get("/v1/admin/tail", tail_api.tail)
    app.router.add_get("/v1/admin/users/{user_id}/connections", users_api.user_connections)
    app.router.add_post("/v1/admin/connections/{connection_id}/close", users_api.close_connection)
    app.router.add_get("/v1/admin/rooms", lookups_api.rooms)
    app.router.add_get("/v1/admin/rooms/{room}/presence", lookups_api.presence)
    app.router.add_get("/v1/admin/history", lookups_api.history)
    app.router.add_post("/v1/admin/messages", publish_api.publish)
    app.router.add_post("/v1/admin/messages/batch", publish_api.publish_batch)
    app.on_shutdown.append(_end_tails)


async def _end_tails(app: web.Application) -> None:
    """Before the server waits for its handlers: open tails end now."""
    if CONSOLE_KEY in app:
        await app[CONSOLE_KEY].tails.shutdown()
