"""An edge that can verify but not mint: EdDSA keys read from auth's JWKS endpoint."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import websockets
from cryptography.hazmat.primitives.asymmetric import ed25519

from roomcast_core.tokens import TokenIssuer
from roomcast_harness.procs import free_port
from tests.conftest import Infra, ServiceFactory
from tests.integration.auth.forge import write_key


async def test_edge_verifies_tokens_with_keys_from_the_jwks_url(
    infra: Infra, topic: str, start_service: ServiceFactory, tmp_path: Path
) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    auth = start_service(
        "auth",
        {
            **infra.env(topic),
            "ROOMCAST_JWT__ALGORITHM": "EdDSA",
            "ROOMCAST_JWT__PRIVATE_KEY_FILE": str(write_key(tmp_path / "k.pem", key)),
            "ROOMCAST_JWT__KID": "k1",
        },
    )
    edge = start_service(
        "edge",
        {
            **infra.env(topic),
            "ROOMCAST_JWT__ALGORITHM": "EdDSA",
            "ROOMCAST_JWT__JWKS_URL": f"{auth.url}/.well-known/jwks.json",
        },
    )
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{auth.url}/v1/tokens", json={"device_id": "d", "is_login": False}
        ) as response,
    ):
        assert response.status == 201
        token = (await response.json())["token"]
    ws_url = edge.url.replace("http://", "ws://") + "/ws"
    async with websockets.connect(f"{ws_url}?token={token}") as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), 20))["action"] == "connected"

    # A key the JWKS does not hold, even with the same kid, is refused before the upgrade.
    stranger = TokenIssuer("EdDSA", ed25519.Ed25519PrivateKey.generate(), kid="k1")
    forged = stranger.issue("u", "d", 60).token
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{edge.url}/ws", params={"token": forged}) as response,
    ):
        assert response.status == 401


def test_unreachable_jwks_stops_the_edge_with_one_line(infra: Infra, topic: str) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
    result = subprocess.run(
        [sys.executable, "-m", "roomcast_edge"],
        env={
            **clean,
            **infra.env(topic),
            "ROOMCAST_EDGE__PORT": str(free_port()),
            "ROOMCAST_JWT__ALGORITHM": "EdDSA",
            "ROOMCAST_JWT__JWKS_URL": f"http://127.0.0.1:{free_port()}/.well-known/jwks.json",
            "ROOMCAST_JWT__JWKS_TIMEOUT": "2",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "ROOMCAST_JWT__JWKS_URL" in lines[0]


def test_no_verification_key_stops_the_edge_with_one_line(infra: Infra, topic: str) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
    result = subprocess.run(
        [sys.executable, "-m", "roomcast_edge"],
        env={**clean, **infra.env(topic), "ROOMCAST_JWT__ALGORITHM": "ES256"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "no ES256 verification key" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
