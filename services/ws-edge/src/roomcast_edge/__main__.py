"""`python -m roomcast_edge`: load settings once, then serve until SIGTERM has drained."""

from __future__ import annotations

from roomcast_core.runner import load_or_exit, serve
from roomcast_edge.app import create_app
from roomcast_edge.drain import CLOSE_WAIT_SECONDS, drain


def main() -> None:
    settings = load_or_exit("edge", needs_jwt_secret=True)
    serve(
        "edge",
        settings,
        create_app,
        settings.edge.host,
        settings.edge.port,
        shutdown_timeout=CLOSE_WAIT_SECONDS,
        on_sigterm=drain,
        # Dead clients are found by the heartbeat check (HEARTBEAT_TIMEOUT, 30 s) and
        # idle HTTP keep-alives by aiohttp's own timeout; TCP keepalive would probe
        # after 2 h. Setting it cost every handshake a Python socket object (kept for
        # the connection's life) and a setsockopt.
        tcp_keepalive=False,
        workers=settings.edge.workers,
    )


if __name__ == "__main__":
    main()
