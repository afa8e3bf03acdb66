"""create_app(settings): the auth service's application, resources in cleanup_ctx."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry

from roomcast_auth.keys import SETTINGS_KEY
from roomcast_core.health import Health, mount_health
from roomcast_core.settings import Settings
from roomcast_core.telemetry import telemetry_ctx


def create_app(settings: Settings) -> web.Application:
    app = web.Application()
    app[SETTINGS_KEY] = settings
    app.cleanup_ctx.append(telemetry_ctx("roomcast-auth"))
    mount_health(app, Health(), CollectorRegistry())
    return app
