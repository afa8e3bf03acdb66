"""Process entry shared by the services: settings, logging, uvloop, run_app."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

from aiohttp import web

from roomcast_core.logs import configure_logging
from roomcast_core.settings import Settings, SettingsError, load_settings
from roomcast_core.tokens import StartupError
from roomcast_core.workers import supervise, this_worker

# Seconds the supervisor of several workers allows beyond their shutdown for a drain.
WORKER_GRACE = 60.0


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
    on_sigterm: Callable[[web.Application], Awaitable[None]] | None = None,
    tcp_keepalive: bool = True,
    workers: int = 1,
) -> None:
    """Run the app until SIGINT/SIGTERM.

    With `on_sigterm`, SIGTERM first awaits it with the listening socket still open
    (so the service can answer new requests with 503 while it drains), then stops.
    Without it, aiohttp closes the listener at once. `tcp_keepalive`: aiohttp's SO_KEEPALIVE on every accepted socket
    (a service that detects dead peers itself can spare that call per connection).
    """
    place = this_worker()
    if workers > 1 and place is None:
        # The workers drain on their own; the supervisor waits for the slowest.
        supervise(service, workers, grace=shutdown_timeout + WORKER_GRACE)
    configure_logging(settings.log, service)
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass
    try:
        app = create_app(settings)
    except StartupError as exc:
        print(f"roomcast-{service}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if on_sigterm is not None:
        app.on_startup.append(_sigterm_handler(on_sigterm))
    web.run_app(
        app,
        host=host,
        port=port,
        print=None,
        access_log=None,
        shutdown_timeout=shutdown_timeout,
        handle_signals=True,
        tcp_keepalive=tcp_keepalive,
        # Workers share the port; each also listens on its own socket for its siblings.
        reuse_port=place is not None,
        path=str(place.socket) if place is not None else None,
    )


def _sigterm_handler(
    on_sigterm: Callable[[web.Application], Awaitable[None]],
) -> Callable[[web.Application], Awaitable[None]]:
    """on_startup hook replacing aiohttp's SIGTERM handler (installed just before it)."""

    async def install(app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()

        async def run() -> None:
            try:
                await on_sigterm(app)
            except Exception:
                logging.getLogger(__name__).exception("SIGTERM hook failed")
            loop.call_soon(_graceful_exit)

        def handle() -> None:
            if tasks:  # a second SIGTERM: stop now
                _graceful_exit()
            task = loop.create_task(run())
            tasks.add(task)

        loop.add_signal_handler(signal.SIGTERM, handle)

    return install


def _graceful_exit() -> None:
    raise web.GracefulExit()
