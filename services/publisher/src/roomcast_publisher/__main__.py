"""`python -m roomcast_publisher`: load settings once, then serve."""

from __future__ import annotations

from roomcast_core.runner import load_or_exit, serve
from roomcast_publisher.app import create_app


def main() -> None:
    settings = load_or_exit("publisher", needs_jwt_secret=False)
    serve(
        "publisher",
        settings,
        create_app,
        settings.publisher.host,
        settings.publisher.port,
        workers=settings.publisher.workers,
    )


if __name__ == "__main__":
    main()
