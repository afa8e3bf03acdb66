"""GET /v1/admin/edges and /v1/admin/edges/history: what the edges report of themselves."""

from __future__ import annotations

import time

from aiohttp import web

from roomcast_core.api import ApiError
from roomcast_core.edge_reports import COUNTERS, FIGURES, HISTORY_SECONDS, totals
from roomcast_core.jsonutil import json_response
from roomcast_publisher.admin.auth import require_admin
from roomcast_publisher.admin.state import CONSOLE_KEY

# Edges whose own series one history answer carries (the totals cover every edge).
MAX_HISTORY_EDGES = 20
COLUMNS = ["seen_at", *FIGURES, *COUNTERS]


def _unavailable(exc: Exception) -> ApiError:
    return ApiError(
        503, "reports_unavailable", f"edge reports cannot be read: {exc}", {"Retry-After": "1"}
    )


async def list_edges(request: web.Request) -> web.Response:
    require_admin(request)
    try:
        edges = await request.app[CONSOLE_KEY].reports.live()
    except Exception as exc:
        raise _unavailable(exc) from None
    return json_response({"edges": edges})


async def edges_history(request: web.Request) -> web.Response:
    """Points newer than `since` (epoch ms; default: the whole 15 minutes): the totals over
    every edge, and the series of the edges named in `edge_id` (comma-separated)."""
    require_admin(request)
    query = request.query
    now_ms = int(time.time() * 1000)
    try:
        since = int(query.get("since", "0"))
    except ValueError:
        raise ApiError(400, "invalid_request", "since: epoch milliseconds expected") from None
    wanted = [e for e in query.get("edge_id", "").split(",") if e][: MAX_HISTORY_EDGES + 1]
    if len(wanted) > MAX_HISTORY_EDGES:
        raise ApiError(
            400, "invalid_request", f"edge_id: at most {MAX_HISTORY_EDGES} edges per request"
        )
    since = max(since, now_ms - HISTORY_SECONDS * 1000)
    try:
        histories = await request.app[CONSOLE_KEY].reports.history(since)
    except Exception as exc:
        raise _unavailable(exc) from None
    chosen = set(wanted)
    return json_response(
        {
            "columns": COLUMNS,
            "totals": totals(histories),
            "edges": [
                {"edge_id": h.edge_id, "points": h.points} for h in histories if h.edge_id in chosen
            ],
            "now": now_ms,
        }
    )
