from __future__ import annotations

import pytest

from roomcast_core.settings import DEV_SECRET, SettingsError, load_settings


def test_defaults_match_the_contract() -> None:
    settings = load_settings({})
    assert settings.redis.url == "redis://127.0.0.1:6379/0"
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.kafka.topic == "roomcast.messages"
    assert settings.jwt.algorithm == "HS256"
    assert settings.jwt.ttl == 86400
    assert settings.edge.heartbeat_timeout == 30
    assert settings.edge.heartbeat_check_interval == 10
    assert settings.edge.max_rooms == 2
    assert (settings.auth.port, settings.edge.port, settings.publisher.port) == (8080, 8081, 8082)


def test_environment_overrides_nested_settings() -> None:
    settings = load_settings(
        {
            "ROOMCAST_EDGE__PORT": "9001",
            "ROOMCAST_EDGE__MAX_ROOMS": "5",
            "ROOMCAST_JWT__SECRET": "s3cret-s3cret-s3cret",
            "ROOMCAST_AUTH__API_KEYS": "k1, k2,,",
            "ROOMCAST_EDGE__COMPRESSION": "true",
        }
    )
    assert settings.edge.port == 9001
    assert settings.edge.max_rooms == 5
    assert settings.jwt.secret == "s3cret-s3cret-s3cret"
    assert settings.auth.api_keys == ("k1", "k2")
    assert settings.edge.compression is True


@pytest.mark.parametrize(
    "links",
    [
        {"ROOMCAST_PORT": "tcp://10.0.0.7:8080"},
        {"ROOMCAST_SERVICE_HOST": "10.0.0.7", "ROOMCAST_SERVICE_PORT": "8080"},
        {"ROOMCAST_AUTH_PORT": "tcp://10.0.0.8:80", "ROOMCAST_AUTH_SERVICE_HOST": "10.0.0.8"},
        {"ROOMCAST_EDGE_PORT_8081_TCP": "tcp://10.0.0.9:8081"},
        {
            "ROOMCAST_EDGE_PORT_8081_TCP_PORT": "8081",
            "ROOMCAST_EDGE_PORT_8081_TCP_ADDR": "10.0.0.9",
        },
        {"ROOMCAST_PUBLISHER_SERVICE_PORT_HTTP": "8082", "ROOMCAST_PUBLISHER_PORT": "tcp://x:1"},
    ],
)
def test_service_link_variables_change_nothing(links: dict[str, str]) -> None:
    assert load_settings(links) == load_settings({})


def test_unknown_variables_are_ignored() -> None:
    assert load_settings({"ROOMCAST_NOPE__X": "1", "ROOMCAST_EDGE__NOPE": "2"}) == load_settings({})


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"ROOMCAST_EDGE__PORT": "abc"}, "ROOMCAST_EDGE__PORT"),
        ({"ROOMCAST_AUTH__PORT": "70000"}, "ROOMCAST_AUTH__PORT"),
        ({"ROOMCAST_PUBLISHER__PORT": "-1"}, "ROOMCAST_PUBLISHER__PORT"),
        ({"ROOMCAST_EDGE__HEARTBEAT_TIMEOUT": "0"}, "ROOMCAST_EDGE__HEARTBEAT_TIMEOUT"),
        ({"ROOMCAST_EDGE__MAX_ROOMS": "two"}, "ROOMCAST_EDGE__MAX_ROOMS"),
        ({"ROOMCAST_KAFKA__TOPIC": '""'}, "ROOMCAST_KAFKA__TOPIC"),
        ({"ROOMCAST_JWT__ALGORITHM": "none"}, "ROOMCAST_JWT__ALGORITHM"),
        ({"ROOMCAST_MODE": "staging"}, "ROOMCAST_MODE"),
        ({"ROOMCAST_EDGE__COMPRESSION": "maybe"}, "ROOMCAST_EDGE__COMPRESSION"),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    message = str(caught.value)
    assert named in message
    assert "\n" not in message


def test_production_needs_a_secret() -> None:
    with pytest.raises(SettingsError, match="ROOMCAST_JWT__SECRET"):
        load_settings({"ROOMCAST_MODE": "production"}, needs_jwt_secret=True)
    settings = load_settings(
        {
            "ROOMCAST_MODE": "production",
            "ROOMCAST_JWT__SECRET": "a-long-enough-secret-0123456789abc",
        },
        needs_jwt_secret=True,
    )
    assert settings.jwt.secret == "a-long-enough-secret-0123456789abc"


def test_local_mode_falls_back_to_development_secret() -> None:
    assert load_settings({}).jwt.secret == DEV_SECRET


def test_explicit_overrides_win_over_environment() -> None:
    settings = load_settings({"ROOMCAST_EDGE__PORT": "9001"}, {"edge": {"port": 9002}})
    assert settings.edge.port == 9002


def test_cors_defaults_to_the_demo_origin_in_local_mode_only() -> None:
    local = load_settings({})
    assert "http://localhost:8081" in local.auth.cors_origins
    assert "http://localhost:8081" in local.publisher.cors_origins
    production = load_settings({"ROOMCAST_MODE": "production"})
    assert production.auth.cors_origins == ()
    assert production.publisher.cors_origins == ()
    explicit = load_settings({"ROOMCAST_AUTH__CORS_ORIGINS": "https://app.example"})
    assert explicit.auth.cors_origins == ("https://app.example",)
