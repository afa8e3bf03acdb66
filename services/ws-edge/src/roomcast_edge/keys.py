"""Typed application state of the edge service."""

from __future__ import annotations

import asyncio

from aiohttp import web

from roomcast_core.edge_link import EdgeLinkClient, Handler
from roomcast_core.settings import Settings
from roomcast_core.tokens import TokenVerifier
from roomcast_edge.adapters.redis_presence import RedisPresence
from roomcast_edge.domain.in_flight import InFlight
from roomcast_edge.domain.ports import StreamArchive
from roomcast_edge.metrics import EdgeMetrics
from roomcast_edge.node import Node
from roomcast_edge.presence import BatchedPresence
from roomcast_edge.revocations import BatchedRevocations

SETTINGS_KEY = web.AppKey("settings", Settings)
METRICS_KEY = web.AppKey("edge_metrics", EdgeMetrics)
VERIFIER_KEY = web.AppKey("verifier", TokenVerifier)
PRESENCE_KEY = web.AppKey("presence", RedisPresence)
NODE_KEY = web.AppKey("node", Node)
REVOCATIONS_KEY = web.AppKey("revocations", BatchedRevocations)
ROOM_PRESENCE_KEY = web.AppKey("room_presence", BatchedPresence)
# The bus's own log read back (None: this bus has no read-back, memory only).
ARCHIVE_KEY: web.AppKey[StreamArchive | None] = web.AppKey("archive")
# This edge's identity in the deployment (roomcast_core.edge_link), made once at start.
EDGE_ID_KEY = web.AppKey("edge_id", str)
# What this edge answers on the edge link, by operation: modules add theirs before start.
LINK_HANDLERS_KEY: web.AppKey[dict[str, Handler]] = web.AppKey("link_handlers")
# Asks other edges over the link (e.g. a request for a connection another edge holds).
LINK_CLIENT_KEY = web.AppKey("link_client", EdgeLinkClient)
# Bounds the requests for SSE streams this edge passes to other edges at once.
FORWARDS_KEY = web.AppKey("sse_forwards", asyncio.Semaphore)
# GET /v1/history requests in progress per token.
HISTORY_REQUESTS_KEY = web.AppKey("history_requests", InFlight)
