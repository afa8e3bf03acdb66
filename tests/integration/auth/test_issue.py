"""Issuing tokens: GET /get/token (compatible) and POST /v1/tokens, happy and refused."""

from __future__ import annotations

import time
from typing import Any

import pytest

from roomcast_core.tokens import TokenClaims, TokenVerifier, VerificationKey
from tests.integration.auth.conftest import DEFAULT_TTL, MAX_TTL, SECRET, Http

VERIFIER = TokenVerifier([VerificationKey("HS256", SECRET)], leeway=5)


def verified(token: str) -> TokenClaims:
    return VERIFIER.verify(token)


@pytest.mark.parametrize(
    ("params", "sub", "did"),
    [
        ({"deviceId": "d1", "isLogin": "false"}, "d1", "d1"),
        ({"deviceId": "d1"}, "d1", "d1"),
        ({"deviceId": "d1", "userId": "u1"}, "d1", "d1"),
        ({"deviceId": "d1", "userId": "u1", "isLogin": "true"}, "u1", "d1"),
        ({"userId": "u1", "isLogin": "true"}, "u1", "u1"),
        ({"userId": "u1", "deviceId": "", "isLogin": "1"}, "u1", "u1"),
        ({"deviceId": "d1", "extra": "ignored"}, "d1", "d1"),
    ],
)
async def test_compat_token_names_user_or_device(
    http: Http, auth_url: str, params: dict[str, str], sub: str, did: str
) -> None:
    reply = await http.get(auth_url + "/get/token", params=params)
    assert reply.status == 200, reply.text
    assert list(reply.body) == ["data"]
    claims = verified(reply.body["data"])
    assert (claims.sub, claims.did) == (sub, did)
    assert claims.exp - claims.iat == DEFAULT_TTL
    assert claims.rooms is None
    assert claims.topics is None


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"isLogin": "true"},
        {"isLogin": "true", "deviceId": "d1"},
        {"isLogin": "true", "userId": ""},
        {"isLogin": "false", "userId": "u1"},
        {"deviceId": ""},
        {"deviceId": "   "},
        {"deviceId": "d1", "isLogin": "maybe"},
        {"deviceId": "d" * 129},
        {"userId": "u" * 129, "isLogin": "true"},
        {"deviceId": "d\x01"},
    ],
)
async def test_compat_token_refuses_bad_parameters(
    http: Http, auth_url: str, params: dict[str, str]
) -> None:
    reply = await http.get(auth_url + "/get/token", params=params)
    assert reply.status == 400
    assert reply.body == {"data": "Invalid request parameters"}


async def test_v1_token_carries_claims_and_expiry(http: Http, auth_url: str) -> None:
    before = int(time.time())
    reply = await http.post(
        auth_url + "/v1/tokens",
        json={
            "device_id": "dev-9",
            "user_id": "user-9",
            "is_login": True,
            "rooms": ["1001", "2002", "1001"],
            "topics": ["order", "quotes"],
            "ttl": 120,
        },
    )
    assert reply.status == 201, reply.text
    assert set(reply.body) == {"token", "token_id", "expires_at"}
    claims = verified(reply.body["token"])
    assert claims.sub == "user-9"
    assert claims.did == "dev-9"
    assert claims.jti == reply.body["token_id"]
    assert claims.rooms == ("1001", "2002")
    assert claims.topics == ("order", "quotes")
    assert reply.body["expires_at"] == claims.exp
    assert isinstance(reply.body["expires_at"], int)
    assert before + 120 <= claims.exp <= int(time.time()) + 120


async def test_v1_token_defaults(http: Http, auth_url: str) -> None:
    reply = await http.post(
        auth_url + "/v1/tokens", json={"device_id": "dev-2", "user_id": None, "is_login": False}
    )
    assert reply.status == 201, reply.text
    claims = verified(reply.body["token"])
    assert (claims.sub, claims.did) == ("dev-2", "dev-2")
    assert claims.exp - claims.iat == DEFAULT_TTL
    assert claims.rooms is None
    assert claims.topics is None
    empty = await http.post(
        auth_url + "/v1/tokens",
        json={"device_id": "dev-3", "user_id": "", "is_login": False, "rooms": [], "ttl": MAX_TTL},
    )
    assert empty.status == 201, empty.text
    claims = verified(empty.body["token"])
    assert claims.rooms == ()
    assert claims.exp - claims.iat == MAX_TTL


VALID: dict[str, Any] = {"device_id": "d", "user_id": "u", "is_login": True}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"device_id": "d", "user_id": "u"}, "is_login"),
        ({**VALID, "is_login": "true"}, "is_login"),
        ({**VALID, "is_login": 1}, "is_login"),
        ({**VALID, "device_id": 5}, "device_id"),
        ({**VALID, "user_id": ["u"]}, "user_id"),
        ({**VALID, "ttl": "60"}, "ttl"),
        ({**VALID, "ttl": 1.5}, "ttl"),
        ({**VALID, "ttl": True}, "ttl"),
        ({**VALID, "ttl": 0}, "ttl"),
        ({**VALID, "ttl": -5}, "ttl"),
        ({**VALID, "ttl": MAX_TTL + 1}, "at most"),
        ({**VALID, "rooms": "1001"}, "rooms"),
        ({**VALID, "rooms": [1001]}, "rooms"),
        ({**VALID, "rooms": [""]}, "rooms"),
        ({**VALID, "rooms": ["10,01"]}, "rooms"),
        ({**VALID, "rooms": ["a b"]}, "rooms"),
        ({**VALID, "rooms": ["r" * 129]}, "rooms"),
        ({**VALID, "rooms": [str(i) for i in range(101)]}, "rooms"),
        ({**VALID, "topics": {"order": 1}}, "topics"),
        ({**VALID, "topics": ["t" * 129]}, "topics"),
        ({**VALID, "device_id": "d" * 129}, "device_id"),
        ({**VALID, "device_id": "d\n"}, "device_id"),
        ({**VALID, "admin": True}, "admin"),
        ({"device_id": "d", "user_id": "", "is_login": True}, "user_id is required"),
        ({"device_id": "", "user_id": "u", "is_login": False}, "device_id is required"),
        ({"is_login": False}, "device_id is required"),
        ([VALID], "JSON object"),
        ("token please", "JSON object"),
    ],
)
async def test_v1_token_refuses_bad_bodies(
    http: Http, auth_url: str, body: Any, fragment: str
) -> None:
    reply = await http.post(auth_url + "/v1/tokens", json=body)
    assert reply.status == 400, reply.text
    assert reply.body["error"]["code"] == "invalid_request"
    assert fragment in reply.body["error"]["message"]


@pytest.mark.parametrize("raw", [b"", b"{", b"not json", b"\xff\xfe", b'{"is_login": tru}'])
async def test_v1_token_refuses_non_json(http: Http, auth_url: str, raw: bytes) -> None:
    reply = await http.post(
        auth_url + "/v1/tokens", data=raw, headers={"Content-Type": "application/json"}
    )
    assert reply.status == 400, reply.text
    assert reply.body["error"]["code"] == "invalid_json"


async def test_v1_token_refuses_oversized_body(http: Http, auth_url: str) -> None:
    body = {**VALID, "rooms": ["r" * 100] * 200}
    reply = await http.post(auth_url + "/v1/tokens", json=body)
    assert reply.status == 413, reply.text
    assert reply.body["error"]["code"] == "payload_too_large"


async def test_unknown_paths_and_methods_answer_json(http: Http, auth_url: str) -> None:
    missing = await http.get(auth_url + "/v1/nothing")
    assert missing.status == 404
    assert missing.body["error"]["code"] == "not_found"
    wrong = await http.get(auth_url + "/v1/tokens")
    assert wrong.status == 405
    assert wrong.body["error"]["code"] == "method_not_allowed"
    assert wrong.headers["Allow"] == "POST"
