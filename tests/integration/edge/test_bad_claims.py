"""Validly signed tokens whose claims are not valid text: refused everywhere a token is
taken (connect, refresh, history), and never a connection left half open.

A JavaScript backend's `JSON.stringify` may write a lone surrogate escape
(`"\\udcff-user"`); the signature holds, but no encoder downstream can write it back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import websockets

from roomcast_core.tokens import TokenIssuer
from tests.conftest import NO_KAFKA, Infra
from tests.integration.edge.conftest import (
    SECRET,
    SharedEdge,
    connect,
    http_get,
    metric,
    module_edge,
    request,
    ws_url,
)

LONE = "\udcff-user"
# Handshakes that get no answer at all (the defect) end here instead of at WAIT.
OPEN_TIMEOUT = 5.0


@pytest.fixture(scope="module")
def infra(aof_redis_url: str) -> Infra:
    # The bus plays no part here: the Redis Streams bus starts in seconds.
    return Infra(aof_redis_url, NO_KAFKA, bus="redis")


@pytest.fixture(scope="module")
def edge(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedEdge]:
    with module_edge(infra, tmp_path_factory) as shared:
        yield shared


def _token(sub: str = "user-1", did: str = "device-1", rooms: list[str] | None = None) -> str:
    return TokenIssuer("HS256", SECRET).issue(sub, did, 600, rooms=rooms).token


@pytest.mark.parametrize(
    "claims",
    [{"sub": LONE}, {"did": LONE}, {"rooms": ["1001", LONE]}],
    ids=["sub", "did", "rooms"],
)
async def test_a_claim_that_is_not_text_is_refused_before_the_upgrade(
    edge: SharedEdge, claims: dict[str, object]
) -> None:
    bad = _token(**claims)  # type: ignore[arg-type]
    attempt = websockets.connect(
        ws_url(edge.edge, token=bad, roomIds="1001"), open_timeout=OPEN_TIMEOUT
    )
    with pytest.raises(websockets.InvalidStatus) as refused:
        await attempt
    response = refused.value.response
    assert response.status_code == 401
    assert json.loads(response.body or b"")["error"]["code"] == "token_invalid"
    # Nothing of it stays behind: not counted, not in a room, not a member.
    assert metric(edge.edge, "roomcast_edge_connections") == 0
    assert metric(edge.edge, "roomcast_edge_presence_members") == 0
    # And the edge goes on serving.
    ws, hello = await connect(edge.edge, token=_token(), roomIds="1001")
    async with ws:
        assert hello["rooms"] == ["1001"]


async def test_a_refresh_to_such_a_token_fails_and_changes_nothing(edge: SharedEdge) -> None:
    ws, _ = await connect(edge.edge, token=_token(), roomIds="1001")
    async with ws:
        bad = _token(rooms=["1001", LONE])
        reply = await request(ws, "refresh", {"token": bad}, request_id="rf")
        assert reply["status"] == "fail", reply
        assert "token_invalid" in reply["error_message"]
        assert (await request(ws, "ping", request_id="alive"))["status"] == "ok"
        good = await request(ws, "refresh", {"token": _token()}, request_id="rf2")
        assert good["status"] == "ok", good


def test_history_refuses_such_a_token(edge: SharedEdge) -> None:
    for bad in (_token(sub=LONE), _token(did=LONE)):
        status, body = http_get(
            edge.edge.url + "/v1/history?room=1001", {"Authorization": f"Bearer {bad}"}
        )
        assert status == 401, body
        assert json.loads(body)["error"]["code"] == "token_invalid"
