"""Presence and webhook settings: defaults, overrides, and what stops a start."""

from __future__ import annotations

import pytest

from roomcast_core.settings import SettingsError, load_settings

PRODUCTION = {"ROOMCAST_MODE": "production", "ROOMCAST_JWT__SECRET": "s" * 40}


def test_presence_and_webhook_defaults() -> None:
    settings = load_settings({})
    assert settings.edge.presence_ttl == 30
    assert settings.edge.presence_max_members == 1000
    assert settings.edge.presence_events is False
    assert settings.webhooks.urls == ()
    assert settings.webhooks.timeout == 5
    assert settings.webhooks.retry_for >= 600


def test_webhook_overrides() -> None:
    settings = load_settings(
        {
            "ROOMCAST_WEBHOOKS__URLS": "http://a/hook, http://b/hook",
            "ROOMCAST_WEBHOOKS__SECRET": "k",
            "ROOMCAST_EDGE__PRESENCE_TTL": "4",
            "ROOMCAST_EDGE__PRESENCE_EVENTS": "true",
        }
    )
    assert settings.webhooks.urls == ("http://a/hook", "http://b/hook")
    assert settings.edge.presence_ttl == 4
    assert settings.edge.presence_events is True


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ROOMCAST_EDGE__PRESENCE_TTL", "0"),
        ("ROOMCAST_EDGE__PRESENCE_MAX_MEMBERS", "many"),
        ("ROOMCAST_EDGE__PRESENCE_EVENTS", "maybe"),
        ("ROOMCAST_WEBHOOKS__TIMEOUT", "-1"),
    ],
)
def test_bad_values_stop_the_start_naming_the_setting(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})


def test_production_webhooks_need_a_secret() -> None:
    urls = {"ROOMCAST_WEBHOOKS__URLS": "https://backend/hook"}
    with pytest.raises(SettingsError, match="ROOMCAST_WEBHOOKS__SECRET"):
        load_settings({**PRODUCTION, **urls}, needs_jwt_secret=True)
    signed = load_settings(
        {**PRODUCTION, **urls, "ROOMCAST_WEBHOOKS__SECRET": "k"}, needs_jwt_secret=True
    )
    assert signed.webhooks.secret == "k"
