"""Process entry shared by the services: settings, logging, uvloop, run_app."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

from aiohttp import web

from roomcast_core.logs import configure_logging
from roomcast_core.settings import Settings, SettingsError, load_settings


def load_or_exit(service: str, *, needs_jwt_secret: bool = False) -> Settings:
    """Load settings; on a bad value print one line naming the setting and exit 2."""
    try:
        return load_settings(needs_jwt_secret=needs_jwt_secret)
    except SettingsError as exc:
        print(f"roomcast-{service}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def serve(
    service: str,
    settings: Settings,
    create_app: Callable[[Settings], web.Application],
    host: str,
    port: int,
    *,
    shutdown_timeout: float = 10.0,
) -> None:
    configure_logging(settings.log, service)
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass
    web.run_app(
        create_app(settings),
        host=host,
        port=port,
        print=None,
        access_log=None,
        shutdown_timeout=shutdown_timeout,
        handle_signals=True,
    )
