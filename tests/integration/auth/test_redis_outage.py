"""Redis stopped and restarted under a running auth service."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from roomcast_harness.redis_server import RedisServer
from tests.conftest import ServiceFactory
from tests.integration.auth.conftest import Http, auth_env, metric_value

# Generous: the box is shared and noisy; these only bound how long we wait for a state.
WAIT = 60.0


async def eventually_status(
    http: Http, method: str, url: str, status: int, headers: Mapping[str, str] | None = None
) -> None:
    async with asyncio.timeout(WAIT):
        while (await http.request(method, url, headers=headers)).status != status:
            await asyncio.sleep(0.2)


async def test_heartbeats_fail_cleanly_while_redis_is_down_and_recover(
    http: Http, own_redis: RedisServer, start_service: ServiceFactory
) -> None:
    auth = start_service("auth", auth_env(own_redis.url, ROOMCAST_REDIS__TIMEOUT="1"))
    token = await http.v1_token(auth.url)
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await http.post(auth.url + "/v1/heartbeat", headers=bearer)).status == 200

    own_redis.stop()
    await eventually_status(http, "GET", auth.url + "/readyz", 503)
    ready = await http.get(auth.url + "/readyz")
    assert any(reason.startswith("redis:") for reason in ready.body["reasons"])

    for _ in range(3):
        v1 = await http.post(auth.url + "/v1/heartbeat", headers=bearer)
        assert v1.status == 503, v1.text
        assert v1.body["error"]["code"] == "redis_unavailable"
        assert v1.headers["Retry-After"] == "1"
        compat = await http.get(auth.url + "/heartbeat", params={"token": token})
        assert compat.status == 503, compat.text
        assert "unavailable" in compat.body["data"]
        revoke = await http.post(auth.url + "/v1/tokens/abc/revoke")
        assert revoke.status == 503
        assert revoke.body["error"]["code"] == "redis_unavailable"
        # Tokens are stateless: issuing goes on without Redis.
        assert (await http.get(auth.url + "/get/token", params={"deviceId": "d"})).status == 200
        assert (await http.v1_token(auth.url)).count(".") == 2
        # A bad token is still a 401, not a 503: signatures are checked before Redis.
        bad = await http.get(auth.url + "/heartbeat", params={"token": "garbage"})
        assert bad.status == 401
    assert (await http.get(auth.url + "/livez")).status == 200
    assert auth.process.poll() is None

    own_redis.start()
    await eventually_status(http, "GET", auth.url + "/readyz", 200)
    await eventually_status(http, "POST", auth.url + "/v1/heartbeat", 200, headers=bearer)
    compat = await http.get(auth.url + "/heartbeat", params={"token": token})
    assert (compat.status, compat.body) == (200, {})
    metrics = (await http.get(auth.url + "/metrics")).text
    assert metric_value(metrics, "roomcast_auth_failures_total", 'reason="redis_unavailable"') >= 9


async def test_service_starts_unready_without_redis_and_becomes_ready(
    http: Http, own_redis: RedisServer, start_service: ServiceFactory
) -> None:
    own_redis.stop()
    auth = start_service("auth", auth_env(own_redis.url), wait_ready=False)
    ready = await http.get(auth.url + "/readyz")
    assert ready.status == 503
    assert (await http.get(auth.url + "/get/token", params={"deviceId": "d"})).status == 200
    own_redis.start()
    await eventually_status(http, "GET", auth.url + "/readyz", 200)
    token = await http.v1_token(auth.url)
    beat = await http.get(auth.url + "/heartbeat", params={"token": token})
    assert beat.status == 200


async def test_an_unresponsive_redis_answers_503_not_a_hang(
    http: Http, start_service: ServiceFactory
) -> None:
    """A Redis that accepts connections and never answers: calls end at the Redis timeout."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        env = auth_env(f"redis://127.0.0.1:{port}/0", ROOMCAST_REDIS__TIMEOUT="0.5")
        auth = start_service("auth", env, wait_ready=False)
        ready = await http.get(auth.url + "/readyz")
        assert ready.status == 503
        token = await http.v1_token(auth.url)
        # The test client's own 30 s timeout would fail this test if the call hung.
        beat = await http.post(
            auth.url + "/v1/heartbeat", headers={"Authorization": f"Bearer {token}"}
        )
        assert beat.status == 503, beat.text
        assert beat.body["error"]["code"] == "redis_unavailable"
        assert auth.process.poll() is None
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
