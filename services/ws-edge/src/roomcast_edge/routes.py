"""The route table of the edge (the health routes come from roomcast_core)."""

from __future__ import annotations

from aiohttp import web

from roomcast_edge.handlers import ws_handler


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ws", ws_handler)
