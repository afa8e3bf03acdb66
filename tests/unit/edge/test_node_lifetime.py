"""Token lifetime in the node, with in-memory transports: the 4001 sweep, renewals."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import orjson
import pytest
from prometheus_client import CollectorRegistry

from roomcast_core.settings import load_settings
from roomcast_core.tokens import RevocationChecker, TokenClaims, TokenIssuer, TokenVerifier
from roomcast_core.tokens import VerificationKey as Key
from roomcast_edge.domain.dispatch import ConnectRequest
from roomcast_edge.domain.expiry import ExpiryWheel
from roomcast_edge.domain.frames import close_frame
from roomcast_edge.domain.lifetime import TokenCheck
from roomcast_edge.domain.ratelimit import TokenBucket
from roomcast_edge.metrics import EdgeMetrics
from roomcast_edge.node import Node
from roomcast_edge.revocations import BatchedRevocations
from roomcast_edge.transport.connection import Connection
from tests.unit.edge.test_node_fanout import FakeTransport, _frames, _publish

SECRET = "unit-secret-0123456789abcdefghijklmnop"
ISSUER = TokenIssuer("HS256", SECRET)
VERIFIER = TokenVerifier([Key("HS256", SECRET)])
GRACE = 25.0

# mypy proves the real implementations fit the node's ports.
_check: TokenCheck = VERIFIER
_revocations: type[RevocationChecker] = BatchedRevocations


class Revoked:
    """RevocationChecker answering from a set, after one loop turn like Redis would."""

    def __init__(self, *jtis: str) -> None:
        self.jtis = set(jtis)
        self.asked = 0

    async def is_revoked(self, jti: str) -> bool:
        self.asked += 1
        await asyncio.sleep(0)
        return jti in self.jtis


def _node(revocations: RevocationChecker | None = None) -> Node:
    settings = load_settings({}, {"edge": {"refresh_grace": GRACE}})
    node = Node(
        settings.edge,
        EdgeMetrics(CollectorRegistry()),
        asyncio.get_running_loop(),
        verifier=VERIFIER,
        revocations=revocations,
    )
    node.start_partition(0, 0)
    return node


def _open(node: Node, claims: TokenClaims, rooms: list[str] | None = None) -> FakeTransport:
    transport = FakeTransport()
    conn = Connection(
        node, cast(asyncio.Transport, transport), claims, TokenBucket(100, 200, 0), 0.0
    )
    node.open(conn, ConnectRequest(rooms or [], [], [], None))
    return transport


def _conn_of(node: Node, transport: FakeTransport) -> Connection:
    return next(c for c in node.connections.values() if c.transport is transport)  # type: ignore[comparison-overlap]


def _refresh(node: Node, conn: Connection, token: str, request_id: str = "r") -> None:
    body = {"request_id": request_id, "action": "refresh", "params": {"token": token}}
    node.handle_text(conn, orjson.dumps(body).decode())


async def _settle() -> None:
    """A few loop turns: the revocation check, the reply, the flush."""
    for _ in range(5):
        await asyncio.sleep(0)


async def _replies(transport: FakeTransport) -> list[dict[str, Any]]:
    await _settle()
    return [f for f in _frames(b"".join(transport.writes)) if "request_id" in f]


async def test_the_sweep_closes_only_connections_past_exp_plus_grace() -> None:
    node = _node()
    now = time.time()
    short = _open(node, ISSUER.issue("u", "d", 60, now=now).claims)
    long = _open(node, ISSUER.issue("u", "d", 3600, now=now).claims)
    exp = int(now) + 60
    assert node.expire_tokens(exp + GRACE - 0.01) == 0
    assert node.expire_tokens(exp + GRACE) == 1
    await asyncio.sleep(0)
    assert short.writes[-1] == close_frame(4001, "token expired")
    assert not long.closed
    assert len(node.connections) == 1
    assert node.expire_tokens(exp + GRACE + 1) == 0  # closed once, never again


async def test_connected_carries_expires_in() -> None:
    node = _node()
    transport = _open(node, ISSUER.issue("u", "d", 120).claims)
    await asyncio.sleep(0)
    hello = _frames(transport.writes[0])[0]
    assert 118 <= hello["expires_in"] <= 120


async def test_expiry_is_not_touched_per_message() -> None:
    """Fan-out never looks at token lifetimes: no wheel call per message or delivery."""
    node = _node()
    calls = 0

    class Counting(ExpiryWheel[Connection]):
        def __getattribute__(self, name: str) -> Any:
            nonlocal calls
            calls += 1
            return super().__getattribute__(name)

    for _ in range(50):
        _open(node, ISSUER.issue("u", "d", 600, rooms=["r"]).claims, rooms=["r"])
    node.tokens.expiry = Counting()
    for offset in range(200):
        assert _publish(node, 0, offset, room="r") == 50
    await asyncio.sleep(0)
    assert calls == 0


async def test_a_refresh_moves_the_deadline_and_narrows_the_rooms() -> None:
    revocations = Revoked()
    node = _node(revocations)
    first = ISSUER.issue("u", "d", 60, rooms=["a", "b"])
    transport = _open(node, first.claims, rooms=["a", "b"])
    conn = _conn_of(node, transport)
    fresh = ISSUER.issue("u", "d", 3600, rooms=["a"])
    _refresh(node, conn, fresh.token)
    (reply,) = await _replies(transport)
    assert reply["status"] == "ok", reply
    assert reply["revoked"] == ["b"]
    assert revocations.asked == 1
    assert conn.claims == fresh.claims
    assert node.tokens.holders(first.claims.jti) == []
    assert node.tokens.holders(fresh.claims.jti) == [conn]
    assert node.expire_tokens(first.claims.exp + GRACE + 1) == 0
    assert node.tokens.expiry.deadline(conn) == fresh.claims.exp + GRACE
    assert _publish(node, 0, 0, room="b") == 0
    assert _publish(node, 0, 1, room="a") == 1


async def test_a_revoked_refresh_token_changes_nothing() -> None:
    fresh = ISSUER.issue("u", "d", 3600, rooms=["*"])
    node = _node(Revoked(fresh.claims.jti))
    first = ISSUER.issue("u", "d", 60, rooms=["a"])
    transport = _open(node, first.claims, rooms=["a"])
    conn = _conn_of(node, transport)
    _refresh(node, conn, fresh.token)
    (reply,) = await _replies(transport)
    assert reply["status"] == "fail"
    assert "token_revoked" in reply["error_message"]
    assert conn.claims == first.claims
    assert node.tokens.expiry.deadline(conn) == first.claims.exp + GRACE


async def test_a_pending_refresh_dies_with_its_connection() -> None:
    node = _node(Revoked())
    transport = _open(node, ISSUER.issue("u", "d", 60).claims)
    conn = _conn_of(node, transport)
    tasks_before = len(asyncio.all_tasks())
    _refresh(node, conn, ISSUER.issue("u", "d", 600).token)
    _refresh(node, conn, ISSUER.issue("u", "d", 600).token, request_id="again")
    assert len(asyncio.all_tasks()) == tasks_before + 1  # one check per connection at most
    node.lost(conn)
    await _settle()
    assert len(asyncio.all_tasks()) == tasks_before
    assert conn not in node.tokens.expiry


async def test_a_connect_that_fails_after_registration_leaves_nothing_behind() -> None:
    """Any step of `open` that raises undoes the registration (no half-open connection)."""
    node = _node()

    def broken(conn: Connection) -> None:
        if node.hub.rooms_of(conn):
            raise ValueError("presence could not encode the member")

    node.hub.on_rooms = broken
    claims = ISSUER.issue("u", "d", 600).claims
    transport = FakeTransport()
    conn = Connection(
        node, cast(asyncio.Transport, transport), claims, TokenBucket(100, 200, 0), 0.0
    )
    with pytest.raises(ValueError, match="presence"):  # the caller owns the socket: it answers
        node.open(conn, ConnectRequest(["r"], [], [], None))
    await _settle()
    assert conn.closed
    assert node.connections == {}
    assert conn not in node.hub
    assert node.tokens.holders(claims.jti) == []
    assert conn not in node.tokens.expiry
    assert _publish(node, 0, 0, room="r") == 0
    assert _publish(node, 0, 1) == 0  # not even a broadcast reaches it
    assert transport.writes == []
