from __future__ import annotations

from typing import Any

import pytest

from roomcast_auth.models import CompatTokenQuery, RevokeTarget, TokenRequest
from roomcast_core.api import ApiError, validate


def test_token_request_accepts_the_documented_shape() -> None:
    body = validate(
        TokenRequest,
        {
            "device_id": "d",
            "user_id": "u",
            "is_login": True,
            "rooms": ["1001"],
            "topics": ["o"],
            "ttl": 60,
        },
    )
    assert body.rooms == ["1001"]
    assert body.ttl == 60
    minimal = validate(TokenRequest, {"is_login": False, "device_id": "d"})
    assert (minimal.user_id, minimal.rooms, minimal.ttl) == (None, None, None)


@pytest.mark.parametrize(
    "data",
    [
        {"device_id": "d"},
        {"is_login": "false", "device_id": "d"},
        {"is_login": False, "device_id": "d", "ttl": 10.0},
        {"is_login": False, "device_id": "d", "rooms": ["x"] * 101},
        {"is_login": False, "device_id": "d", "topics": ["a\tb"]},
        {"is_login": False, "device_id": "é" * 129},
        {"is_login": False, "device_id": "d", "other": None},
    ],
)
def test_token_request_refusals(data: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as caught:
        validate(TokenRequest, data)
    assert caught.value.status == 400


def test_compat_query_ignores_unknown_parameters_and_bounds_ids() -> None:
    query = validate(CompatTokenQuery, {"deviceId": "d", "utm": "x"})
    assert query.deviceId == "d"
    with pytest.raises(ApiError):
        validate(CompatTokenQuery, {"deviceId": "d" * 129})


@pytest.mark.parametrize("token_id", ["", "a/b", "a b", "x" * 129])
def test_revoke_target_refusals(token_id: str) -> None:
    with pytest.raises(ApiError):
        validate(RevokeTarget, {"token_id": token_id})
