"""ROOMCAST_AUTH__API_KEYS guards issuing and revoking; heartbeats never need a key."""

from __future__ import annotations

from roomcast_core.tokens import TokenVerifier, VerificationKey
from tests.conftest import ServiceFactory
from tests.integration.auth.conftest import SECRET, Http, auth_env, metric_value

KEYS = ("key-one-0123456789abcdef", "key-two-0123456789abcdef")
V1_BODY = {"device_id": "d", "user_id": "u", "is_login": True}


async def test_api_keys_guard_issue_and_revocation(
    http: Http, redis_url: str, start_service: ServiceFactory
) -> None:
    auth = start_service("auth", auth_env(redis_url, ROOMCAST_AUTH__API_KEYS=",".join(KEYS)))
    refused_headers = [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": f"Bearer {KEYS[0]}x"},
        {"Authorization": f"Basic {KEYS[0]}"},
        {"Authorization": KEYS[0]},
    ]
    for headers in refused_headers:
        v1 = await http.post(auth.url + "/v1/tokens", json=V1_BODY, headers=headers)
        assert v1.status == 401, headers
        assert v1.body["error"]["code"] == "unauthorized"
        assert v1.headers["WWW-Authenticate"] == "Bearer"
        compat = await http.get(auth.url + "/get/token", params={"deviceId": "d"}, headers=headers)
        assert compat.status == 401, headers
        assert compat.body == {"data": "Unauthorized"}
        revoke = await http.post(auth.url + "/v1/tokens/abc/revoke", headers=headers)
        assert revoke.status == 401, headers
        assert revoke.body["error"]["code"] == "unauthorized"

    for key in KEYS:
        granted = {"Authorization": f"Bearer {key}"}
        token = await http.v1_token(auth.url, headers=granted)
        compat = await http.get(auth.url + "/get/token", params={"deviceId": "d"}, headers=granted)
        assert compat.status == 200, compat.text
        # The connection token itself is the credential for heartbeats, not an API key.
        beat = await http.post(
            auth.url + "/v1/heartbeat", headers={"Authorization": f"Bearer {token}"}
        )
        assert beat.status == 200, beat.text
        jti = TokenVerifier([VerificationKey("HS256", SECRET)]).verify(token).jti
        revoke = await http.post(auth.url + f"/v1/tokens/{jti}/revoke", headers=granted)
        assert revoke.status == 200, revoke.text
        # A token cannot stand in for an API key.
        assert (
            await http.post(
                auth.url + "/v1/tokens", json=V1_BODY, headers={"Authorization": f"Bearer {token}"}
            )
        ).status == 401

    metrics = (await http.get(auth.url + "/metrics")).text
    assert metric_value(metrics, "roomcast_auth_failures_total", 'reason="unauthorized"') >= 15
    assert metric_value(metrics, "roomcast_auth_tokens_issued_total") == 4


async def test_without_keys_revocation_is_refused_in_production(
    http: Http, redis_url: str, start_service: ServiceFactory
) -> None:
    auth = start_service("auth", auth_env(redis_url, ROOMCAST_MODE="production"))
    token = await http.v1_token(auth.url)  # issuing stays open without keys, as specified
    jti = TokenVerifier([VerificationKey("HS256", SECRET)]).verify(token).jti
    reply = await http.post(auth.url + f"/v1/tokens/{jti}/revoke")
    assert reply.status == 403, reply.text
    assert reply.body["error"]["code"] == "revocation_disabled"
    assert "ROOMCAST_AUTH__API_KEYS" in reply.body["error"]["message"]
    beat = await http.get(auth.url + "/heartbeat", params={"token": token})
    assert beat.status == 200  # the refused revocation left the token alone
