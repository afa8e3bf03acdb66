"""Settings of the Redis and Kafka links: credentials taken as written, TLS files that
must exist, combinations that cannot work named at start; the options every client gets."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from roomcast_core.kafka_link import kafka_options
from roomcast_core.redis_link import redis_client
from roomcast_core.settings import SettingsError, load_settings

SASL = {
    "ROOMCAST_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
    "ROOMCAST_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
    "ROOMCAST_KAFKA__SASL_USERNAME": "roomcast",
    "ROOMCAST_KAFKA__SASL_PASSWORD": "s3cret",
}


def test_plaintext_links_without_credentials_by_default() -> None:
    settings = load_settings({})
    assert settings.kafka.security_protocol == "PLAINTEXT"
    assert (settings.redis.password, settings.redis.ca_file) == ("", "")
    options = kafka_options(settings.kafka)
    assert options == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize("password", ["1234", "@int 5", "true", "[a, b]", "p@ss:w/rd"])
def test_credentials_are_taken_as_written(password: str) -> None:
    settings = load_settings(
        {
            **SASL,
            "ROOMCAST_KAFKA__SASL_PASSWORD": password,
            "ROOMCAST_REDIS__PASSWORD": password,
            "ROOMCAST_REDIS__USERNAME": "007",
        }
    )
    assert settings.kafka.sasl_password == password
    assert settings.redis.password == password
    assert settings.redis.username == "007"


def test_sasl_ssl_options_carry_the_credentials_and_a_verifying_context(tmp_path: Path) -> None:
    kafka = load_settings(SASL).kafka
    options = kafka_options(kafka)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "roomcast",
        "s3cret",
    )
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True


@pytest.mark.parametrize(
    ("env", "names"),
    [
        (
            {"ROOMCAST_KAFKA__SECURITY_PROTOCOL": "SASL_SSL"},
            "ROOMCAST_KAFKA__SASL_PASSWORD",
        ),
        ({"ROOMCAST_KAFKA__SECURITY_PROTOCOL": "TLS"}, "ROOMCAST_KAFKA__SECURITY_PROTOCOL"),
        ({**SASL, "ROOMCAST_KAFKA__SASL_MECHANISM": "GSSAPI"}, "ROOMCAST_KAFKA__SASL_MECHANISM"),
        ({"ROOMCAST_KAFKA__SSL_CA_FILE": "{ca}"}, "ROOMCAST_KAFKA__SSL_CA_FILE"),
        (
            {**SASL, "ROOMCAST_KAFKA__SSL_CA_FILE": "/nonexistent/ca.pem"},
            "ROOMCAST_KAFKA__SSL_CA_FILE",
        ),
        ({**SASL, "ROOMCAST_KAFKA__SSL_CERT_FILE": "{ca}"}, "ROOMCAST_KAFKA__SSL_KEY_FILE"),
        ({"ROOMCAST_REDIS__CA_FILE": "{ca}"}, "ROOMCAST_REDIS__CA_FILE"),
        (
            {"ROOMCAST_REDIS__URL": "rediss://r:6380/0", "ROOMCAST_REDIS__KEY_FILE": "{ca}"},
            "ROOMCAST_REDIS__CERT_FILE",
        ),
    ],
)
def test_links_that_cannot_work_stop_the_start_naming_the_setting(
    tmp_path: Path, env: dict[str, str], names: str
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read here\n")
    with pytest.raises(SettingsError, match=names):
        load_settings({k: v.replace("{ca}", str(ca)) for k, v in env.items()})


def test_a_tls_redis_gets_its_ca_and_the_setting_wins_over_the_url(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read until connecting\n")
    settings = load_settings(
        {
            "ROOMCAST_REDIS__URL": "rediss://:stale@redis.example:6380/2",
            "ROOMCAST_REDIS__PASSWORD": "fresh",
            "ROOMCAST_REDIS__CA_FILE": str(ca),
        }
    ).redis
    client = redis_client(settings)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["password"] == "fresh"
    assert kwargs["ssl_ca_certs"] == str(ca)
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("redis.example", 6380, 2)


def test_a_password_in_the_url_still_works_alone() -> None:
    settings = load_settings({"ROOMCAST_REDIS__URL": "redis://:in-url@127.0.0.1:6379/0"}).redis
    assert redis_client(settings).connection_pool.connection_kwargs["password"] == "in-url"
