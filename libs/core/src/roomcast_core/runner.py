"""Process entry shared by the services: settings, logging, uvloop, run_app."""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
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
    Without it, aiohttp closes the listener at once. `tcp_keepalive`: aiohttp's
    SO_KEEPALIVE on every accepted socket (a service that detects dead peers itself can
    spare that call per connection). A port that cannot be opened stops the service
    with one line naming the setting that moves it.
    """
    try:
        # Before any worker starts and before create_app's links to Redis and Kafka:
        # a busy port is told at once, and once.
        _try_listen(host, port)
    except OSError as exc:
        _exit_if_bind_failure(service, host, port, exc)
        raise
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
    try:
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
    except OSError as exc:
        # Something took the port between the check and the bind.
        _exit_if_bind_failure(service, host, port, exc)
        raise


def _try_listen(host: str, port: int) -> None:
    """Bind and close a socket on every address aiohttp would listen on."""
    for family, kind, proto, _, address in socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        with socket.socket(family, kind, proto) as probe:
            # As aiohttp does, so a port left in TIME_WAIT does not count as busy; and
            # SO_REUSEPORT, so workers sharing the port with it do not either.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            probe.bind(address)


def _exit_if_bind_failure(service: str, host: str, port: int, exc: OSError) -> None:
    line = bind_failure(service, host, port, exc)
    if line is not None:
        print(f"roomcast-{service}: {line}", file=sys.stderr)
        raise SystemExit(2) from None


def bind_failure(service: str, host: str, port: int, exc: OSError) -> str | None:
    """One line for a listener that could not be opened, naming the setting that moves
    it; None for any other error. A busy port is the commonest first-run failure."""
    section = f"ROOMCAST_{service.upper()}"
    where = f"{host}:{port}"
    if isinstance(exc, socket.gaierror):
        return f"cannot listen on {where}: unknown host; set {section}__HOST"
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} is already in use ({where}); set {section}__PORT to another port"
    if exc.errno == errno.EACCES:
        return f"not allowed to listen on {where}; set {section}__PORT to a port above 1023"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {where}: no such local address; set {section}__HOST"
    return None


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
