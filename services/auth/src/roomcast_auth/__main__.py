"""`python -m roomcast_auth`: load settings once, then serve."""

from __future__ import annotations

from roomcast_auth.app import create_app
from roomcast_core.runner import load_or_exit, serve


def main() -> None:
    settings = load_or_exit("auth", needs_jwt_secret=True)
    serve("auth", settings, create_app, settings.auth.host, settings.auth.port)


if __name__ == "__main__":
    main()
