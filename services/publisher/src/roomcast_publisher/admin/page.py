"""GET /console/: the operator console's static page (it holds no data; it asks for a key)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from roomcast_publisher.admin.auth import require_console

PAGE_DIR = Path(__file__).resolve().parent.parent / "console_page"
FILES = {
    "": ("index.html", "text/html"),
    "console.js": ("console.js", "text/javascript"),
    "console.css": ("console.css", "text/css"),
}


async def console_file(request: web.Request) -> web.FileResponse:
    require_console(request)
    entry = FILES.get(request.match_info.get("name", ""))
    if entry is None:
        raise web.HTTPNotFound()
    name, content_type = entry
    return web.FileResponse(
        PAGE_DIR / name,
        headers={
            "Content-Type": content_type,
            "Cache-Control": "no-cache",
            # The page runs only its own script and talks only to this publisher.
            "Content-Security-Policy": (
                "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'"
            ),
            "X-Content-Type-Options": "nosniff",
        },
    )


async def console_redirect(request: web.Request) -> web.Response:
    require_console(request)
    raise web.HTTPPermanentRedirect("/console/")
