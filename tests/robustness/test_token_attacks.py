"""Token attacks against the edge (before the upgrade) and auth (both heartbeats).

Every forged, tampered, expired, not-yet-valid, revoked, malformed or oversized token
is refused with a 4xx, never a 5xx, and both services keep serving valid tokens.
A valid token is held to its claims: rooms and topics outside them are refused, and
the ledger proves no message outside them ever reaches the client.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from roomcast_core.tokens import TokenIssuer, TokenVerifier, VerificationKey, jwks_document
from roomcast_harness.services import ServiceProcess
from tests.conftest import Infra
from tests.integration.auth import forge
from tests.integration.edge.conftest import SECRET, WAIT, bus_publisher, token
from tests.robustness.ledger import Ledger
from tests.robustness.support import publish_direct, watch

OVERSIZED = 100 * 1024


def _valid(**overrides: object) -> str:
    return forge.hs256(forge.claims(**overrides), SECRET.encode())


def _tampered() -> str:
    # A token limited to room "mine", with the limit removed from the payload.
    genuine = token(rooms=["mine"])
    _, body, _ = genuine.split(".")
    payload = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    del payload["rooms"]
    return forge.with_payload(genuine, payload)


def _header(header: dict[str, object]) -> str:
    # A correct HS256 signature under a header naming another (or a nonsense) algorithm.
    return forge.hs256(forge.claims(), SECRET.encode(), header=header)


ATTACKS: dict[str, Callable[[], str]] = {
    "tampered payload": _tampered,
    "tampered signature": lambda: token()[:-4] + "AAAA",
    "wrong key": lambda: forge.hs256(forge.claims(), b"another-secret-0123456789abcdefghij"),
    "alg none": lambda: forge.unsigned(forge.claims()),
    "alg None": lambda: forge.unsigned(forge.claims(), alg="None"),
    "alg NONE with signature": lambda: forge.unsigned(forge.claims(), alg="NONE") + "c2ln",
    "alg HS512 with the right secret": lambda: _header({"alg": "HS512"}),
    "alg RS256 header": lambda: _header({"alg": "RS256"}),
    "alg EdDSA header": lambda: _header({"alg": "EdDSA"}),
    "alg as a list": lambda: _header({"alg": ["HS256"]}),
    "alg as an object": lambda: _header({"alg": {"HS256": True}}),
    "alg null": lambda: _header({"alg": None}),
    "kid as an object": lambda: _header({"kid": {"a": 1}}),
    "expired": lambda: _valid(exp=int(time.time()) - 120),
    "not yet valid": lambda: _valid(nbf=int(time.time()) + 600),
    "no exp": lambda: forge.hs256(
        {k: v for k, v in forge.claims().items() if k != "exp"}, SECRET.encode()
    ),
    "exp as a string": lambda: _valid(exp=str(int(time.time()) + 600)),
    "exp as a float": lambda: _valid(exp=time.time() + 600.5),
    "sub as a number": lambda: _valid(sub=42),
    "empty jti": lambda: _valid(jti=""),
    "rooms as a string": lambda: _valid(rooms="1001"),
    "topics with a number": lambda: _valid(topics=["order", 7]),
    "payload is a list": lambda: forge.hs256([1, 2], SECRET.encode()),  # type: ignore[arg-type]
    "two parts": lambda: ".".join(token().split(".")[:2]),
    "four parts": lambda: token() + ".AAAA",
    "not base64": lambda: "!!!.@@@.###",
    "non-ascii": lambda: "é.é.é",
    "long but under the line limit": lambda: "a" * 8000,
}


@dataclass(frozen=True)
class Services:
    auth: ServiceProcess
    edge: ServiceProcess
    topic: str


def _start(procs: list[ServiceProcess]) -> None:
    for proc in procs:
        proc.launch()
    for proc in procs:
        proc.wait_ready(timeout=90)


@pytest.fixture(scope="module")
def services(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    topic = f"roomcast.test.tokens.{uuid.uuid4().hex[:10]}"
    env = infra.env(topic, ROOMCAST_JWT__LEEWAY="5")
    workdir = Path(tmp_path_factory.mktemp("tokens"))
    auth = ServiceProcess("auth", env, workdir, name="auth")
    edge = ServiceProcess("edge", env, workdir, name="edge")
    try:
        _start([auth, edge])
        yield Services(auth, edge, topic)
    finally:
        edge.stop()
        auth.stop()


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT * 3)) as client:
        yield client


async def _edge_status(
    session: aiohttp.ClientSession, edge: ServiceProcess, bad: str, *, header: bool = False
) -> int:
    """HTTP status of a WebSocket handshake presenting `bad` (0 when it was accepted)."""
    ws_url = edge.url + "/ws"
    try:
        if header:
            ws = await session.ws_connect(ws_url, headers={"Authorization": f"Bearer {bad}"})
        else:
            ws = await session.ws_connect(ws_url, params={"token": bad})
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status
    await ws.close()
    return 0


async def _auth_statuses(
    session: aiohttp.ClientSession, auth: ServiceProcess, bad: str
) -> tuple[int, int]:
    async with session.get(auth.url + "/heartbeat", params={"token": bad}) as compat:
        compat_status = compat.status
        if compat_status == 401:
            assert await compat.json() == {"data": "token error"}
    headers = {"Authorization": f"Bearer {bad}"}
    async with session.post(auth.url + "/v1/heartbeat", headers=headers) as v1:
        if v1.status == 401:
            assert (await v1.json())["error"]["code"] in ("invalid_token", "missing_token")
        return compat_status, v1.status


async def _still_serving(session: aiohttp.ClientSession, services: Services) -> None:
    good = token()
    assert await _edge_status(session, services.edge, good) == 0
    assert await _auth_statuses(session, services.auth, good) == (200, 200)


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_forged_and_malformed_tokens_are_refused_everywhere(
    services: Services, session: aiohttp.ClientSession, attack: str
) -> None:
    bad = ATTACKS[attack]()
    statuses = (
        await _edge_status(session, services.edge, bad),
        await _edge_status(session, services.edge, bad, header=True),
        *await _auth_statuses(session, services.auth, bad),
    )
    assert statuses == (401, 401, 401, 401), "edge ?token, edge header, auth compat, auth v1"
    await _still_serving(session, services)


async def test_oversized_tokens_are_refused_cleanly(
    services: Services, session: aiohttp.ClientSession
) -> None:
    huge = "a" * OVERSIZED
    for header in (False, True):
        status = await _edge_status(session, services.edge, huge, header=header)
        assert 400 <= status < 500, status
    for method, url, kwargs in [
        ("GET", services.auth.url + "/heartbeat", {"params": {"token": huge}}),
        ("POST", services.auth.url + "/v1/heartbeat", {"headers": {"Authorization": huge}}),
        ("GET", services.auth.url + "/get/token", {"params": {"deviceId": huge}}),
    ]:
        async with session.request(method, url, **kwargs) as reply:  # type: ignore[arg-type]
            assert 400 <= reply.status < 500, (url, reply.status)
    await _still_serving(session, services)


async def test_revoked_token_is_refused_by_edge_and_auth(
    services: Services, session: aiohttp.ClientSession
) -> None:
    body = {"device_id": "revoked-device", "is_login": False}
    async with session.post(services.auth.url + "/v1/tokens", json=body) as reply:
        assert reply.status == 201
        issued = await reply.json()
    assert await _edge_status(session, services.edge, issued["token"]) == 0
    revoke = f"{services.auth.url}/v1/tokens/{issued['token_id']}/revoke"
    async with session.post(revoke) as reply:
        assert reply.status == 200
    assert await _edge_status(session, services.edge, issued["token"]) == 401
    assert await _auth_statuses(session, services.auth, issued["token"]) == (401, 401)
    await _still_serving(session, services)


async def test_claims_bound_rooms_and_topics_and_nothing_else_arrives(
    services: Services, session: aiohttp.ClientSession, infra: Infra
) -> None:

    limited = token(rooms=["1001"], topics=["order"])
    ledger = Ledger()
    client = await watch(
        ledger,
        "limited",
        services.edge,
        limited,
        [("order", "*"), ("secret", "*")],
        roomIds="1001,2002",
    )
    try:
        hello_rooms = client.record.entitlement.rooms
        assert hello_rooms == {"1001"}
        assert client.record.entitlement.subscriptions == {("order", "*")}
        ws = client.ws
        for request in (
            {"request_id": "j", "action": "join", "params": {"room": "2002"}},
            {"request_id": "s", "action": "subscribe", "params": {"topic": "secret"}},
            {"request_id": "w", "action": "subscribe", "params": {"topic": "*"}},
        ):
            await ws.send(orjson.dumps(request).decode())
        async with bus_publisher(infra, services.topic) as publisher:
            allowed = await publish_direct(publisher, ledger, 3, room="1001")
            allowed += await publish_direct(publisher, ledger, 3, topic="order", type_="event")
            await publish_direct(publisher, ledger, 3, room="2002")
            await publish_direct(publisher, ledger, 3, topic="secret", type_="event")
            await publish_direct(publisher, ledger, 3, topic="order", type_="event", room="2002")
            marker = await publish_direct(publisher, ledger, 1, room="1001")
        await client.wait_for(allowed + marker)
    finally:
        await client.close()
    replies = {r["request_id"]: r for r in client.replies if "request_id" in r}
    for request_id in ("j", "s", "w"):
        assert replies[request_id]["status"] == "fail", replies
        assert "not allowed by the token" in replies[request_id]["error_message"], replies
    report = ledger.check()
    assert report.ok, report.text()
    assert report.clients[0].expected == len(allowed) + 1


# ---- algorithm confusion against an asymmetric (EdDSA) deployment ------------------


@pytest.fixture(scope="module")
def eddsa(
    infra: Infra, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Services, ed25519.Ed25519PrivateKey]]:
    workdir = Path(tmp_path_factory.mktemp("eddsa"))
    key = ed25519.Ed25519PrivateKey.generate()
    forge.write_key(workdir / "signing.pem", key)
    # The edge gets only the public key, as a JWKS: it can verify, never mint.
    jwks = jwks_document(TokenVerifier([VerificationKey("EdDSA", key.public_key(), "k1")]))
    (workdir / "public.jwks").write_bytes(orjson.dumps(jwks))
    topic = f"roomcast.test.eddsa.{uuid.uuid4().hex[:10]}"
    common = {**infra.env(topic), "ROOMCAST_JWT__ALGORITHM": "EdDSA"}
    auth = ServiceProcess(
        "auth",
        {
            **common,
            "ROOMCAST_JWT__PRIVATE_KEY_FILE": str(workdir / "signing.pem"),
            "ROOMCAST_JWT__KID": "k1",
        },
        workdir,
        name="auth",
    )
    edge = ServiceProcess(
        "edge",
        {**common, "ROOMCAST_JWT__JWKS_FILE": str(workdir / "public.jwks")},
        workdir,
        name="edge",
    )
    try:
        _start([auth, edge])
        yield Services(auth, edge, topic), key
    finally:
        edge.stop()
        auth.stop()


async def test_hs256_signed_with_the_public_key_is_refused(
    eddsa: tuple[Services, ed25519.Ed25519PrivateKey], session: aiohttp.ClientSession
) -> None:
    services, key = eddsa
    good = TokenIssuer("EdDSA", key, "k1").issue("user", "device", 600).token
    assert await _edge_status(session, services.edge, good) == 0
    assert await _auth_statuses(session, services.auth, good) == (200, 200)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    confused = [
        forge.hs256(forge.claims(), public_pem, header={"kid": "k1"}),
        forge.hs256(forge.claims(), raw, header={"kid": "k1"}),
        forge.hs256(forge.claims(), SECRET.encode()),  # the dev secret of HS256 set-ups
        forge.unsigned(forge.claims()),
        forge.with_payload(good, forge.claims(sub="someone-else")),
    ]
    for bad in confused:
        assert await _edge_status(session, services.edge, bad) == 401, forge.header(bad)
        assert await _auth_statuses(session, services.auth, bad) == (401, 401)
    assert await _edge_status(session, services.edge, good) == 0
