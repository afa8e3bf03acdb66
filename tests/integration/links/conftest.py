"""Servers that want credentials and TLS, as managed ones do: a Kafka with a SASL_SSL
listener (SCRAM and PLAIN users, a keytool CA) and a Redis with requirepass and TLS only.

They are this directory's own: the session's plain Redis and Kafka stay as they are.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest

from roomcast_harness.certs import CertAuthority, Issued
from roomcast_harness.kafka_broker import KafkaBroker
from roomcast_harness.kafka_secure import SecureListener
from roomcast_harness.redis_server import RedisServer, RedisTls

KAFKA_USER = ("roomcast", "kafka-secret-0123")
REDIS_PASSWORD = "redis:secret@0123"  # characters a URL would have to escape
JWT_SECRET = "links-test-secret-0123456789abcdefghijkl"
WAIT = 60.0  # the box is shared: a broker's answer may take a while

T = TypeVar("T")


@pytest.fixture(scope="session")
def authority(tmp_path_factory: pytest.TempPathFactory) -> CertAuthority:
    return CertAuthority(tmp_path_factory.mktemp("ca")).create()


@pytest.fixture(scope="session")
def server_cert(authority: CertAuthority) -> Issued:
    return authority.issue("server")


@pytest.fixture(scope="session")
def client_cert(authority: CertAuthority) -> Issued:
    return authority.issue("client")


@pytest.fixture(scope="session")
def secure_kafka(
    tmp_path_factory: pytest.TempPathFactory, authority: CertAuthority, server_cert: Issued
) -> Iterator[KafkaBroker]:
    """SASL over mutual TLS: a client shows a certificate and a password."""
    listener = SecureListener(
        keystore=server_cert.keystore,
        truststore=authority.truststore,
        store_password=authority.password,
        users=(KAFKA_USER,),
        client_auth="required",
    )
    with KafkaBroker(tmp_path_factory.mktemp("secure-kafka"), secure=listener) as broker:
        yield broker


@pytest.fixture(scope="session")
def secure_redis(
    tmp_path_factory: pytest.TempPathFactory, authority: CertAuthority, server_cert: Issued
) -> Iterator[RedisServer]:
    tls = RedisTls(cert=server_cert.cert, key=server_cert.key, ca=authority.ca_pem)
    server = RedisServer(tmp_path_factory.mktemp("secure-redis"), password=REDIS_PASSWORD, tls=tls)
    with server:
        yield server


def link_env(
    kafka: KafkaBroker,
    redis: RedisServer,
    authority: CertAuthority,
    client: Issued,
    topic: str,
) -> dict[str, str]:
    """Every service's environment: SCRAM-SHA-512 over mutual TLS, Redis over TLS with a
    password."""
    return {
        "OTEL_SDK_DISABLED": "true",
        "ROOMCAST_JWT__SECRET": JWT_SECRET,
        "ROOMCAST_KAFKA__BOOTSTRAP_SERVERS": kafka.secure_bootstrap_servers,
        "ROOMCAST_KAFKA__TOPIC": topic,
        "ROOMCAST_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "ROOMCAST_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
        "ROOMCAST_KAFKA__SASL_USERNAME": KAFKA_USER[0],
        "ROOMCAST_KAFKA__SASL_PASSWORD": KAFKA_USER[1],
        "ROOMCAST_KAFKA__SSL_CA_FILE": str(authority.ca_pem),
        "ROOMCAST_KAFKA__SSL_CERT_FILE": str(client.cert),
        "ROOMCAST_KAFKA__SSL_KEY_FILE": str(client.key),
        "ROOMCAST_REDIS__URL": redis.url,
        "ROOMCAST_REDIS__PASSWORD": REDIS_PASSWORD,
        "ROOMCAST_REDIS__CA_FILE": str(authority.ca_pem),
    }


async def eventually(
    check: Callable[[], Awaitable[T | None]], what: str, timeout: float = WAIT
) -> T:
    """The first non-None answer of `check`, polled until a deadline."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last is not None:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
