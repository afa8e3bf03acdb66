"""Heartbeats: recorded in Redis for every edge to see; refused tokens get 401."""

from __future__ import annotations

import time
from collections.abc import Callable

import jwt
import pytest
import redis.asyncio as aioredis

from roomcast_core.redis_keys import heartbeat_key, revoked_key
from roomcast_core.tokens import TokenVerifier, VerificationKey
from tests.integration.auth import forge
from tests.integration.auth.conftest import (
    HEARTBEAT_TIMEOUT,
    LEEWAY,
    MAX_TTL,
    SECRET,
    Http,
    metric_value,
)

VERIFIER = TokenVerifier([VerificationKey("HS256", SECRET)])


async def test_compat_heartbeat_records_in_redis(
    http: Http, auth_url: str, redis_client: aioredis.Redis
) -> None:
    token = (await http.get(auth_url + "/get/token", params={"deviceId": "d1"})).body["data"]
    jti = VERIFIER.verify(token).jti
    assert await redis_client.exists(heartbeat_key(jti)) == 0
    reply = await http.get(auth_url + "/heartbeat", params={"token": token})
    assert reply.status == 200, reply.text
    assert reply.body == {}
    ttl_ms = await redis_client.pttl(heartbeat_key(jti))
    assert 0 < ttl_ms <= HEARTBEAT_TIMEOUT * 1000
    raw = await redis_client.get(heartbeat_key(jti))
    assert raw is not None
    recorded = int(raw)
    assert abs(recorded / 1000 - time.time()) < 600  # epoch milliseconds, not seconds


async def test_v1_heartbeat_reports_when_it_lapses(
    http: Http, auth_url: str, redis_client: aioredis.Redis
) -> None:
    token = await http.v1_token(auth_url)
    reply = await http.post(
        auth_url + "/v1/heartbeat", headers={"Authorization": f"Bearer {token}"}
    )
    assert reply.status == 200, reply.text
    assert reply.body == {"expires_in": HEARTBEAT_TIMEOUT}
    ttl_ms = await redis_client.pttl(heartbeat_key(VERIFIER.verify(token).jti))
    assert 0 < ttl_ms <= HEARTBEAT_TIMEOUT * 1000


def _other_secret(_: str) -> str:
    return forge.hs256(forge.claims(), b"some-other-secret-0123456789abcdefgh")


def _tampered(token: str) -> str:
    return forge.with_payload(token, forge.claims(sub="someone-else"))


def _alg_none(_: str) -> str:
    return forge.unsigned(forge.claims())


def _alg_none_upper(_: str) -> str:
    return forge.unsigned(forge.claims(), alg="NONE")


def _expired(_: str) -> str:
    now = int(time.time())
    return forge.hs256(
        forge.claims(iat=now - 7200, nbf=now - 7200, exp=now - 3600), SECRET.encode()
    )


def _not_yet_valid(_: str) -> str:
    now = int(time.time())
    return forge.hs256(forge.claims(nbf=now + 3600, exp=now + 7200), SECRET.encode())


def _without_exp(_: str) -> str:
    payload = forge.claims()
    del payload["exp"]
    return forge.hs256(payload, SECRET.encode())


def _rs256_header(_: str) -> str:
    return forge.hs256(forge.claims(), SECRET.encode(), header={"alg": "RS256"})


def _unverified_jti(token: str) -> str | None:
    try:
        jti = jwt.decode(token, options={"verify_signature": False}).get("jti")
    except jwt.PyJWTError:
        return None
    return jti if isinstance(jti, str) else None


REFUSED: dict[str, Callable[[str], str]] = {
    "wrong_signature": _other_secret,
    "tampered_payload": _tampered,
    "alg_none": _alg_none,
    "alg_NONE": _alg_none_upper,
    "expired": _expired,
    "not_yet_valid": _not_yet_valid,
    "no_exp_claim": _without_exp,
    "foreign_alg_header": _rs256_header,
    "garbage": lambda _: "garbage",
    "three_dots": lambda _: "a.b.c",
    "truncated": lambda token: token[: len(token) // 2],
    "long": lambda _: "x" * 7000,
    "non_ascii": lambda _: "tökén",
}


@pytest.mark.parametrize("make", REFUSED.values(), ids=REFUSED.keys())
async def test_refused_tokens_get_401_on_both_heartbeats(
    http: Http, auth_url: str, redis_client: aioredis.Redis, make: Callable[[str], str]
) -> None:
    token = make(await http.v1_token(auth_url))
    compat = await http.get(auth_url + "/heartbeat", params={"token": token})
    assert compat.status == 401, compat.text
    assert compat.body == {"data": "token error"}
    v1 = await http.post(auth_url + "/v1/heartbeat", headers={"Authorization": f"Bearer {token}"})
    assert v1.status == 401, v1.text
    assert v1.body["error"]["code"] == "invalid_token"
    assert "invalid_token" in v1.headers["WWW-Authenticate"]
    jti = _unverified_jti(token)
    if jti is not None:
        assert await redis_client.exists(heartbeat_key(jti)) == 0


async def test_missing_tokens_get_401(http: Http, auth_url: str) -> None:
    for params in ({}, {"token": ""}):
        compat = await http.get(auth_url + "/heartbeat", params=params)
        assert compat.status == 401
        assert compat.body == {"data": "token error"}
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Basic abc"}):
        v1 = await http.post(auth_url + "/v1/heartbeat", headers=headers)
        assert v1.status == 401, v1.text
        assert v1.body["error"]["code"] == "missing_token"


async def test_revoked_token_is_refused_everywhere(
    http: Http, auth_url: str, redis_client: aioredis.Redis
) -> None:
    token = await http.v1_token(auth_url)
    bearer = {"Authorization": f"Bearer {token}"}
    jti = VERIFIER.verify(token).jti
    assert (await http.post(auth_url + "/v1/heartbeat", headers=bearer)).status == 200
    before = int(time.time())
    reply = await http.post(auth_url + f"/v1/tokens/{jti}/revoke")
    assert reply.status == 200, reply.text
    assert reply.body["token_id"] == jti
    assert reply.body["revoked"] is True
    assert before + MAX_TTL + LEEWAY <= reply.body["revoked_until"]
    assert reply.body["revoked_until"] <= int(time.time()) + MAX_TTL + LEEWAY
    ttl = await redis_client.ttl(revoked_key(jti))
    assert 0 < ttl <= MAX_TTL + LEEWAY
    assert await redis_client.exists(heartbeat_key(jti)) == 0
    v1 = await http.post(auth_url + "/v1/heartbeat", headers=bearer)
    assert v1.status == 401
    assert "revoked" in v1.body["error"]["message"]
    compat = await http.get(auth_url + "/heartbeat", params={"token": token})
    assert compat.status == 401
    assert compat.body == {"data": "token error"}
    metrics = (await http.get(auth_url + "/metrics")).text
    assert metric_value(metrics, "roomcast_auth_failures_total", 'reason="revoked"') >= 2
    assert metric_value(metrics, "roomcast_auth_revocations_total") >= 1


@pytest.mark.parametrize("token_id", ["a b", "x" * 129, "%00", "a.b"])
async def test_revoke_refuses_bad_token_ids(http: Http, auth_url: str, token_id: str) -> None:
    reply = await http.post(auth_url + f"/v1/tokens/{token_id}/revoke")
    assert reply.status == 400, reply.text
    assert reply.body["error"]["code"] == "invalid_request"


async def test_metrics_count_issue_heartbeat_and_failures(http: Http, auth_url: str) -> None:
    def read(text: str) -> tuple[float, float, float]:
        return (
            metric_value(text, "roomcast_auth_tokens_issued_total"),
            metric_value(text, "roomcast_auth_heartbeats_total"),
            metric_value(text, "roomcast_auth_failures_total", 'reason="bad_signature"'),
        )

    issued, beats, bad = read((await http.get(auth_url + "/metrics")).text)
    token = await http.v1_token(auth_url)
    await http.get(auth_url + "/heartbeat", params={"token": token})
    await http.get(auth_url + "/heartbeat", params={"token": _other_secret(token)})
    after = read((await http.get(auth_url + "/metrics")).text)
    # Other tests may run against the same process, so at least, not exactly.
    assert after[0] >= issued + 1
    assert after[1] >= beats + 1
    assert after[2] >= bad + 1
