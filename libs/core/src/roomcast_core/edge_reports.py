"""What every edge reports of itself to Redis, and the console's reading of it.

Key layout (a report is one JSON object of FIGURES plus `edge_id` and `seen_at`, ms):
    roomcast:edge-reports            sorted set edge id -> seen_at of its last report
    roomcast:edge-history:<edge>     list of its reports, newest first, capped at
                                     HISTORY_POINTS and expiring HISTORY_SECONDS after
                                     the last one, so a dead edge's history goes too
An edge not heard from for LIVE_SECONDS is gone from the live list.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

REPORTS_KEY = "roomcast:edge-reports"
HISTORY_PREFIX = "roomcast:edge-history:"
REPORT_SECONDS = 2.0
LIVE_SECONDS = 10.0
HISTORY_SECONDS = 15 * 60
HISTORY_POINTS = math.ceil(HISTORY_SECONDS / REPORT_SECONDS)
# Edges one answer lists at most: far more than a deployment runs.
MAX_EDGES = 1000

FIGURES = (
    "connections",
    "rooms",
    "subscriptions",
    "messages_in_per_s",
    "deliveries_per_s",
    "p99_ms",
)
# Kept in the history only: the counters the rates come from, to check them against.
COUNTERS = ("messages_in_total", "deliveries_total")


def history_key(edge_id: str) -> str:
    return HISTORY_PREFIX + edge_id


@dataclass(frozen=True, slots=True)
class EdgeHistory:
    edge_id: str
    # oldest first: [seen_at, *FIGURES, *COUNTERS]
    points: list[list[float]]


def _decode(raw: Any) -> dict[str, Any] | None:
    try:
        report = json.loads(raw)
    except (TypeError, ValueError):
        return None
    if not isinstance(report, dict) or not isinstance(report.get("seen_at"), int | float):
        return None
    return report


def _point(report: dict[str, Any]) -> list[float]:
    values = [report.get(name, 0) for name in ("seen_at", *FIGURES, *COUNTERS)]
    return [v if isinstance(v, int | float) else 0 for v in values]


class EdgeReports:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    async def write(self, edge_id: str, figures: dict[str, float]) -> None:
        """One report: the latest figures, in the live list and the history, one round trip."""
        seen_at = int(time.time() * 1000)
        report = json.dumps({"edge_id": edge_id, **figures, "seen_at": seen_at})
        key = history_key(edge_id)
        pipe = self._client.pipeline(transaction=False)
        pipe.zadd(REPORTS_KEY, {edge_id: seen_at})
        # Edges gone longer than the history leave the live list's key for good.
        pipe.zremrangebyscore(REPORTS_KEY, "-inf", seen_at - HISTORY_SECONDS * 1000)
        pipe.lpush(key, report)
        pipe.ltrim(key, 0, HISTORY_POINTS - 1)
        pipe.expire(key, HISTORY_SECONDS)
        await pipe.execute()

    async def retire(self, edge_id: str) -> None:
        """A stopping edge leaves the live list at once (its history stays to be seen)."""
        await self._client.zrem(REPORTS_KEY, edge_id)

    async def _edges_since(self, since_ms: int) -> list[str]:
        ids: Any = await self._client.zrangebyscore(
            REPORTS_KEY, since_ms, "+inf", start=0, num=MAX_EDGES
        )
        return sorted(i.decode() if isinstance(i, bytes) else str(i) for i in ids)

    async def live(self) -> list[dict[str, Any]]:
        """Every edge heard from within LIVE_SECONDS, its latest figures, by edge id."""
        now_ms = int(time.time() * 1000)
        edges = await self._edges_since(now_ms - int(LIVE_SECONDS * 1000))
        if not edges:
            return []
        pipe = self._client.pipeline(transaction=False)
        for edge_id in edges:
            pipe.lindex(history_key(edge_id), 0)
        latest: list[Any] = await pipe.execute()
        out = []
        for edge_id, raw in zip(edges, latest, strict=True):
            report = _decode(raw) if raw is not None else None
            if report is None or report["seen_at"] < now_ms - LIVE_SECONDS * 1000:
                continue
            out.append(
                {
                    "edge_id": edge_id,
                    **{name: report.get(name, 0) for name in FIGURES},
                    "seen_at": report["seen_at"],
                }
            )
        return out

    async def history(self, since_ms: int) -> list[EdgeHistory]:
        """Every edge's reports newer than since_ms (at most the last HISTORY_SECONDS)."""
        now_ms = int(time.time() * 1000)
        since_ms = max(since_ms, now_ms - HISTORY_SECONDS * 1000)
        edges = await self._edges_since(since_ms)
        if not edges:
            return []
        # Newest first: only as many entries as the time since `since_ms` can hold.
        count = min(HISTORY_POINTS, math.ceil((now_ms - since_ms) / (REPORT_SECONDS * 1000)) + 2)
        pipe = self._client.pipeline(transaction=False)
        for edge_id in edges:
            pipe.lrange(history_key(edge_id), 0, count - 1)
        lists: list[Any] = await pipe.execute()
        out = []
        for edge_id, raws in zip(edges, lists, strict=True):
            points = [
                _point(report)
                for report in (_decode(raw) for raw in reversed(raws or []))
                if report is not None and report["seen_at"] > since_ms
            ]
            out.append(EdgeHistory(edge_id, points))
        return out


def totals(
    histories: list[EdgeHistory], step_ms: int = int(REPORT_SECONDS * 1000)
) -> list[list[float]]:
    """Every edge's figures added up per reporting step (p99: the worst edge's).

    Each edge counts once per step (its last report in it), so edges reporting out of
    phase with each other neither double nor drop out of a step.
    """
    steps: dict[int, dict[str, list[float]]] = {}
    for history in histories:
        for point in history.points:
            steps.setdefault(int(point[0]) // step_ms, {})[history.edge_id] = point
    out = []
    p99 = 1 + FIGURES.index("p99_ms")
    for step in sorted(steps):
        points = list(steps[step].values())
        row = [float(step * step_ms)]
        for column in range(1, 1 + len(FIGURES) + len(COUNTERS)):
            values = [p[column] for p in points]
            row.append(max(values) if column == p99 else sum(values))
        out.append(row)
    return out
