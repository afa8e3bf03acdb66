"""`python -m roomcast_edge`: load settings once, then serve."""

from __future__ import annotations

from roomcast_core.runner import load_or_exit, serve
from roomcast_edge.app import create_app


def main() -> None:
    settings = load_or_exit("edge", needs_jwt_secret=True)
    serve("edge", settings, create_app, settings.edge.host, settings.edge.port)


if __name__ == "__main__":
    main()
