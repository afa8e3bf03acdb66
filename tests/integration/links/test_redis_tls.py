"""Redis with a password and TLS: the client every service builds (redis_link) against a
real redis-server with requirepass and tls-port, and auth's readiness when it is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.exceptions import AuthenticationError, ConnectionError, ResponseError

from roomcast_core.redis_link import redis_client
from roomcast_core.settings import RedisSettings
from roomcast_harness.certs import CertAuthority, Issued
from roomcast_harness.redis_server import RedisServer, RedisTls
from tests.conftest import ServiceFactory
from tests.integration.links.conftest import JWT_SECRET, REDIS_PASSWORD, WAIT, eventually


async def _ping(settings: RedisSettings) -> bool:
    client = redis_client(settings, socket_timeout=WAIT, socket_connect_timeout=WAIT)
    try:
        return bool(await client.ping())
    finally:
        await client.aclose()


async def test_password_and_ca_reach_a_tls_redis(
    secure_redis: RedisServer, authority: CertAuthority
) -> None:
    settings = RedisSettings(
        url=secure_redis.url, timeout=WAIT, password=REDIS_PASSWORD, ca_file=str(authority.ca_pem)
    )
    assert secure_redis.url.startswith("rediss://")
    assert await _ping(settings)
    # The setting (a Secret) wins over a stale password left in the URL.
    stale = secure_redis.url.replace("rediss://", "rediss://:old-password@")
    assert await _ping(RedisSettings(**{**_fields(settings), "url": stale}))


def _fields(settings: RedisSettings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.__slots__}


async def test_a_wrong_password_or_an_unknown_ca_is_refused(
    secure_redis: RedisServer, authority: CertAuthority
) -> None:
    good = RedisSettings(
        url=secure_redis.url, timeout=WAIT, password=REDIS_PASSWORD, ca_file=str(authority.ca_pem)
    )
    with pytest.raises(AuthenticationError):
        await _ping(RedisSettings(**{**_fields(good), "password": "wrong"}))
    with pytest.raises((AuthenticationError, ResponseError)):
        await _ping(RedisSettings(**{**_fields(good), "password": ""}))
    with pytest.raises(ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        await _ping(RedisSettings(**{**_fields(good), "ca_file": ""}))


async def test_a_client_certificate_reaches_a_redis_that_wants_one(
    tmp_path: Path, authority: CertAuthority, server_cert: Issued, client_cert: Issued
) -> None:
    tls = RedisTls(server_cert.cert, server_cert.key, authority.ca_pem, client_certs=True)
    with RedisServer(tmp_path / "mtls-redis", tls=tls) as server:
        anonymous = RedisSettings(url=server.url, timeout=WAIT, ca_file=str(authority.ca_pem))
        with pytest.raises(ConnectionError):
            await _ping(anonymous)
        known = RedisSettings(
            **{
                **_fields(anonymous),
                "cert_file": str(client_cert.cert),
                "key_file": str(client_cert.key),
            }
        )
        assert await _ping(known)


async def test_auth_readiness_names_a_refused_redis_password(
    secure_redis: RedisServer, authority: CertAuthority, start_service: ServiceFactory
) -> None:
    env = {
        "OTEL_SDK_DISABLED": "true",
        "ROOMCAST_JWT__SECRET": JWT_SECRET,
        "ROOMCAST_REDIS__URL": secure_redis.url,
        "ROOMCAST_REDIS__PASSWORD": "wrong",
        "ROOMCAST_REDIS__CA_FILE": str(authority.ca_pem),
    }
    auth = start_service("auth", env, wait_ready=False)

    async def refused() -> str | None:
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as session,
                session.get(f"{auth.url}/readyz") as response,
            ):
                body = json.dumps(await response.json(content_type=None))
        except aiohttp.ClientError:
            return None  # not listening yet
        return body if response.status == 503 and "invalid username-password" in body else None

    reason = await eventually(refused, "auth's readiness to name the refused password")
    assert "redis" in reason
