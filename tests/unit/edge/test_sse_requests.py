"""Who may send a stream's requests (`sse_api.answer`), with a real token verifier and
in-memory transports: the current token even once expired, the same user's others."""

from __future__ import annotations

import asyncio
import time
from typing import cast

import orjson
import pytest
from prometheus_client import CollectorRegistry

from roomcast_core.settings import load_settings
from roomcast_core.tokens import IssuedToken, TokenIssuer, TokenVerifier, VerificationKey
from roomcast_edge import sse_requests
from roomcast_edge.domain.dispatch import ConnectRequest
from roomcast_edge.domain.ratelimit import TokenBucket
from roomcast_edge.metrics import EdgeMetrics
from roomcast_edge.node import Node
from roomcast_edge.sse_requests import answer
from roomcast_edge.transport.sse import SseConnection
from tests.unit.edge.test_node_fanout import FakeTransport, _node

SECRET = "unit-secret-0123456789abcdefghijklmnopq"
ISSUER = TokenIssuer("HS256", SECRET)
VERIFIER = TokenVerifier([VerificationKey("HS256", SECRET)])
PING = b'{"request_id": "r", "action": "ping"}'


def _issue(subject: str = "u", device: str = "d", *, expired: bool = False) -> IssuedToken:
    return ISSUER.issue(subject, device, 60, now=time.time() - 600 if expired else None)


def _stream(node: Node, current: IssuedToken) -> SseConnection:
    conn = SseConnection(
        node,
        cast(asyncio.Transport, FakeTransport()),
        current.claims,
        current.token,
        TokenBucket(100, 200, 0),
        {0: -1},
        f"{node.edge_id}-{current.claims.jti}",
    )
    node.open(conn, ConnectRequest([], [], [], None))
    return conn


async def _status(node: Node, conn: SseConnection, token: str) -> tuple[int, str]:
    status, body = await answer(node, VERIFIER, conn.id, token, PING)
    reply = orjson.loads(body)
    return status, reply["status"] if status == 200 else reply["error"]["code"]


async def test_the_current_token_is_enough_even_expired() -> None:
    node = _node()
    current = _issue(expired=True)  # a stream in its refresh grace still needs requests
    conn = _stream(node, current)
    assert await _status(node, conn, current.token) == (200, "ok")


async def test_another_token_of_the_same_user_and_device_is_checked() -> None:
    node = _node()
    conn = _stream(node, _issue())
    assert await _status(node, conn, _issue().token) == (200, "ok")
    assert await _status(node, conn, _issue(expired=True).token) == (401, "token_expired")
    assert await _status(node, conn, "not.a.token") == (401, "token_invalid")


async def test_someone_elses_token_is_forbidden() -> None:
    node = _node()
    conn = _stream(node, _issue())
    assert await _status(node, conn, _issue("other").token) == (403, "forbidden")
    assert await _status(node, conn, _issue("u", "other-device").token) == (403, "forbidden")


async def test_only_streams_held_here_answer() -> None:
    node = _node()
    current = _issue()
    conn = _stream(node, current)
    status, _ = await answer(node, VERIFIER, conn.id + "x", current.token, PING)
    assert status == 404
    node.close(conn, 1012, "service restart")
    status, _ = await answer(node, VERIFIER, conn.id, current.token, PING)
    assert status == 404


class GatedRevocations:
    """A revocation check that answers only when the test lets it."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()

    async def is_revoked(self, jti: str) -> bool:
        await self.gate.wait()
        return False


async def test_a_late_reply_never_answers_the_next_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sse_requests, "REPLY_SECONDS", 0.05)
    revocations = GatedRevocations()
    settings = load_settings({}, {})
    loop = asyncio.get_running_loop()
    node = Node(
        settings.edge,
        EdgeMetrics(CollectorRegistry()),
        loop,
        verifier=VERIFIER,
        revocations=revocations,
    )
    node.start_partition(0, 0)
    current = _issue()
    conn = _stream(node, current)
    refresh = orjson.dumps(
        {"request_id": "late", "action": "refresh", "params": {"token": _issue().token}}
    )
    status, _ = await answer(node, VERIFIER, conn.id, current.token, refresh)
    assert status == 504  # its revocation check is still running
    ping = asyncio.create_task(answer(node, VERIFIER, conn.id, current.token, PING))
    await asyncio.sleep(0.1)
    assert not ping.done()  # it waits for the late reply, which is not its own
    revocations.gate.set()
    status, body = await ping
    assert status == 200
    assert orjson.loads(body)["request_id"] == "r"


async def test_requests_waiting_for_one_stream_are_bounded() -> None:
    revocations = GatedRevocations()
    settings = load_settings({}, {})
    loop = asyncio.get_running_loop()
    node = Node(
        settings.edge,
        EdgeMetrics(CollectorRegistry()),
        loop,
        verifier=VERIFIER,
        revocations=revocations,
    )
    node.start_partition(0, 0)
    current = _issue()
    conn = _stream(node, current)
    refresh = orjson.dumps(
        {"request_id": "slow", "action": "refresh", "params": {"token": _issue().token}}
    )
    first = asyncio.create_task(answer(node, VERIFIER, conn.id, current.token, refresh))
    waiting = [
        asyncio.create_task(answer(node, VERIFIER, conn.id, current.token, PING))
        for _ in range(sse_requests.MAX_QUEUED)
    ]
    await asyncio.sleep(0)  # one turn: the first holds the stream, the others queue
    status, body = await answer(node, VERIFIER, conn.id, current.token, PING)
    assert (status, orjson.loads(body)["error"]["code"]) == (429, "too_many_requests")
    revocations.gate.set()
    assert (await first)[0] == 200
    assert [(await task)[0] for task in waiting] == [200] * sse_requests.MAX_QUEUED
