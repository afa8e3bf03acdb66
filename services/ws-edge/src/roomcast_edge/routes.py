"""The route table of the edge (the health routes come from roomcast_core)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from roomcast_edge.handlers import ws_handler
from roomcast_edge.history_api import history_handler
from roomcast_edge.keys import SETTINGS_KEY
from roomcast_edge.sse_api import sse_handler
from roomcast_edge.sse_requests import preflight_handler, requests_handler

# The demo page and the client bundle it uses (both built from clients/js), shipped
# inside the package.
DEMO_DIR = Path(__file__).resolve().parent / "demo"


async def _demo_index(_: web.Request) -> web.FileResponse:
    return web.FileResponse(DEMO_DIR / "index.html")


def _beside(request: web.Request, port: int) -> str:
    """The URL of a service on the host the page was loaded from, at its own port."""
    host = request.url.host or "localhost"
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return f"{request.scheme}://{host}:{port}"


async def _demo_config(request: web.Request) -> web.Response:
    # What the demo page cannot know by itself: where auth, the publisher and the
    # traces of its pushes are.
    settings = request.app[SETTINGS_KEY]
    edge = settings.edge
    return web.json_response(
        {
            "authUrl": edge.demo_auth_url or _beside(request, settings.auth.port),
            "publisherUrl": edge.demo_publisher_url or _beside(request, settings.publisher.port),
            "traceUiUrl": edge.trace_ui_url,
        }
    )


async def _demo_redirect(_: web.Request) -> web.Response:
    raise web.HTTPPermanentRedirect("/demo/")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ws", ws_handler)
    app.router.add_get("/v1/history", history_handler)
    # No HEAD: it would be taken over and streamed like a GET.
    app.router.add_get("/sse", sse_handler, allow_head=False)
    app.router.add_post("/v1/connections/{connection_id}/requests", requests_handler)
    app.router.add_route("OPTIONS", "/v1/connections/{connection_id}/requests", preflight_handler)
    app.router.add_get("/demo", _demo_redirect)
    app.router.add_get("/demo/", _demo_index)
    app.router.add_get("/demo/config.json", _demo_config)
    app.router.add_static("/demo/", DEMO_DIR, append_version=False)
