"""Typed application state of the publisher service."""

from __future__ import annotations

from aiohttp import web

from roomcast_core.settings import Settings
from roomcast_publisher.domain.publishing import Publisher
from roomcast_publisher.metrics import PublisherMetrics

SETTINGS_KEY = web.AppKey("settings", Settings)
PUBLISHER_KEY = web.AppKey("publisher", Publisher)
PUBLISHER_METRICS_KEY = web.AppKey("publisher_metrics", PublisherMetrics)
