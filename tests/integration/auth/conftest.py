"""The auth service as its own process, and a small HTTP client to talk to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from multidict import CIMultiDictProxy

from roomcast_harness.services import ServiceProcess

SECRET = "auth-test-secret-0123456789abcdefghijk"
HEARTBEAT_TIMEOUT = 45
DEFAULT_TTL = 600
MAX_TTL = 3600
LEEWAY = 5
CORS_ORIGIN = "https://app.example"


def auth_env(redis_url: str, **extra: str) -> dict[str, str]:
    """Environment of an auth process with the test's lifetimes, no API keys, HS256."""
    return {
        "ROOMCAST_REDIS__URL": redis_url,
        "ROOMCAST_REDIS__TIMEOUT": "2",
        "ROOMCAST_JWT__SECRET": SECRET,
        "ROOMCAST_JWT__TTL": str(DEFAULT_TTL),
        "ROOMCAST_JWT__MAX_TTL": str(MAX_TTL),
        "ROOMCAST_JWT__LEEWAY": str(LEEWAY),
        "ROOMCAST_EDGE__HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
        "ROOMCAST_AUTH__CORS_ORIGINS": CORS_ORIGIN,
        "OTEL_SDK_DISABLED": "true",
        **extra,
    }


@pytest.fixture(scope="package")
def auth_url(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One shared auth process in the default set-up (its tests only add state keyed
    by fresh token ids, so they cannot disturb each other)."""
    proc = ServiceProcess("auth", auth_env(redis_url), tmp_path_factory.mktemp("auth-logs"))
    proc.start()
    try:
        yield proc.url
    finally:
        proc.stop()


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    headers: CIMultiDictProxy[str]
    text: str


class Http:
    """Requests against one service; bodies parsed as JSON when they are JSON."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        data: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Reply:
        async with self._session.request(
            method, url, json=json, data=data, headers=headers, params=params
        ) as response:
            text = await response.text()
            body: Any = None
            if response.content_type == "application/json":
                body = await response.json()
            return Reply(response.status, body, response.headers, text)

    async def get(self, url: str, **kwargs: Any) -> Reply:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> Reply:
        return await self.request("POST", url, **kwargs)

    async def v1_token(self, base: str, headers: Mapping[str, str] | None = None) -> str:
        reply = await self.post(
            base + "/v1/tokens",
            json={"device_id": "dev-1", "user_id": "user-1", "is_login": True},
            headers=headers,
        )
        assert reply.status == 201, reply.text
        token: str = reply.body["token"]
        return token


@pytest.fixture
async def http() -> AsyncIterator[Http]:
    # Generous: the box is shared; a bounded answer is checked by the Redis outage test.
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield Http(session)


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


def metric_value(text: str, name: str, labels: str = "") -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample == wanted:
            return float(value)
    return 0.0
