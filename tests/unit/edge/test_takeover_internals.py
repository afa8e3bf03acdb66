"""The socket takeover reaches into aiohttp: everything it relies on must still be there."""

from __future__ import annotations

import pytest
from aiohttp import web_protocol

from roomcast_edge.transport import takeover


def test_installed_aiohttp_has_every_internal_the_takeover_uses() -> None:
    assert takeover.missing_internals() == []
    takeover.check_aiohttp()  # what create_app runs at start


def test_a_changed_aiohttp_stops_the_edge_with_the_missing_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Renamed:
        __slots__ = ("_tail_renamed", "transport")

        def connection_lost(self, exc: BaseException | None) -> None: ...

    monkeypatch.setattr(web_protocol, "RequestHandler", Renamed)
    assert takeover.missing_internals() == ["RequestHandler._message_tail"]
    with pytest.raises(takeover.TakeoverUnsupported, match=r"RequestHandler\._message_tail"):
        takeover.check_aiohttp()


def test_the_edge_app_refuses_to_start_on_such_an_aiohttp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from roomcast_core.settings import load_settings
    from roomcast_edge.app import create_app

    monkeypatch.setattr(web_protocol, "RequestHandler", object)
    with pytest.raises(takeover.TakeoverUnsupported, match=r"RequestHandler\.connection_lost"):
        create_app(load_settings({}, {}))
