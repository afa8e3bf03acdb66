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
    )


if __name__ == "__main__":
    main()
