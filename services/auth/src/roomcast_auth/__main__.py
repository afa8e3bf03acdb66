"""`python -m roomcast_auth`: load settings and keys once, then serve."""

from __future__ import annotations

import sys

from roomcast_auth.app import create_app
from roomcast_auth.signing import signing_from_settings
from roomcast_core.runner import load_or_exit, serve
from roomcast_core.settings import SettingsError


def main() -> None:
    settings = load_or_exit("auth", needs_jwt_secret=True)
    try:
        # A missing or wrong key file stops the start with one line, like any bad setting.
        signing = signing_from_settings(settings.jwt)
    except SettingsError as exc:
        print(f"roomcast-auth: {exc}", file=sys.stderr)
        raise SystemExit(2) from None

    serve(
        "auth",
        settings,
        lambda loaded: create_app(loaded, signing),
        settings.auth.host,
        settings.auth.port,
    )


if __name__ == "__main__":
    main()
