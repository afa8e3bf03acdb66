"""Asymmetric signing with a served JWKS, key rotation, and bad key files at start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from roomcast_core.tokens import (
    PrivateKey,
    TokenIssuer,
    TokenVerifier,
    VerificationKey,
    jwks_document,
    keys_from_jwks,
)
from tests.conftest import ServiceFactory
from tests.integration.auth import forge
from tests.integration.auth.conftest import SECRET, Http, auth_env
from tests.integration.auth.forge import write_key


def public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize(
    ("algorithm", "make_key"),
    [
        ("EdDSA", ed25519.Ed25519PrivateKey.generate),
        ("ES256", lambda: ec.generate_private_key(ec.SECP256R1())),
    ],
)
async def test_asymmetric_tokens_verify_through_the_served_jwks(
    http: Http,
    redis_url: str,
    start_service: ServiceFactory,
    tmp_path: Path,
    algorithm: str,
    make_key: object,
) -> None:
    assert callable(make_key)
    current: PrivateKey = make_key()
    previous: PrivateKey = make_key()
    # The previous key is still trusted for verification while its tokens live out.
    old_jwks = jwks_document(
        TokenVerifier([VerificationKey(algorithm, previous.public_key(), "k-old")])
    )
    (tmp_path / "previous.jwks").write_bytes(orjson.dumps(old_jwks))
    env = auth_env(
        redis_url,
        ROOMCAST_JWT__ALGORITHM=algorithm,
        ROOMCAST_JWT__PRIVATE_KEY_FILE=str(write_key(tmp_path / "signing.pem", current)),
        ROOMCAST_JWT__KID="k-new",
        ROOMCAST_JWT__JWKS_FILE=str(tmp_path / "previous.jwks"),
    )
    auth = start_service("auth", env)

    reply = await http.get(auth.url + "/.well-known/jwks.json")
    assert reply.status == 200
    document = reply.body
    assert {k["kid"] for k in document["keys"]} == {"k-new", "k-old"}
    assert all("d" not in k for k in document["keys"])  # never a private part
    assert all(k["alg"] == algorithm for k in document["keys"])

    token = await http.v1_token(auth.url)
    assert forge.header(token) == {"alg": algorithm, "typ": "JWT", "kid": "k-new"}
    edge_view = TokenVerifier(keys_from_jwks(document))
    claims = edge_view.verify(token)
    assert (claims.sub, claims.did) == ("user-1", "dev-1")

    bearer = {"Authorization": f"Bearer {token}"}
    assert (await http.post(auth.url + "/v1/heartbeat", headers=bearer)).status == 200
    rotated_out = TokenIssuer(algorithm, previous, kid="k-old").issue("old-user", "old-dev", 60)
    reply = await http.get(auth.url + "/heartbeat", params={"token": rotated_out.token})
    assert reply.status == 200, reply.text

    refused = {
        "hs256_with_public_key": forge.hs256(forge.claims(), public_pem(current)),
        "hs256_with_public_key_and_kid": forge.hs256(
            forge.claims(), public_pem(current), header={"kid": "k-new"}
        ),
        "hs256_with_the_shared_test_secret": forge.hs256(forge.claims(), SECRET.encode()),
        "unknown_kid": TokenIssuer(algorithm, make_key(), kid="k-other").issue("u", "d", 60).token,
        "unknown_key_same_kid": TokenIssuer(algorithm, make_key(), kid="k-new")
        .issue("u", "d", 60)
        .token,
        "alg_none": forge.unsigned(forge.claims()),
    }
    for name, bad in refused.items():
        reply = await http.get(auth.url + "/heartbeat", params={"token": bad})
        assert reply.status == 401, name
        assert reply.body == {"data": "token error"}, name
        reply = await http.post(
            auth.url + "/v1/heartbeat", headers={"Authorization": f"Bearer {bad}"}
        )
        assert reply.status == 401, name


async def test_hs256_previous_secrets_still_verify(
    http: Http, redis_url: str, start_service: ServiceFactory
) -> None:
    old_secret = "the-previous-secret-0123456789abcdefgh"
    env = auth_env(
        redis_url, ROOMCAST_JWT__PREVIOUS_SECRETS=f"{old_secret}, unused-0123456789abcdefghijklmnop"
    )
    auth = start_service("auth", env)
    old = TokenIssuer("HS256", old_secret).issue("u", "d", 60).token
    reply = await http.post(auth.url + "/v1/heartbeat", headers={"Authorization": f"Bearer {old}"})
    assert reply.status == 200, reply.text
    new = await http.v1_token(auth.url)
    assert TokenVerifier([VerificationKey("HS256", SECRET)]).verify(new).sub == "user-1"
    jwks = await http.get(auth.url + "/.well-known/jwks.json")
    assert jwks.body == {"keys": []}  # shared secrets are never published


def _start_and_fail(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
    return subprocess.run(
        [sys.executable, "-m", "roomcast_auth"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("algorithm", "key_file", "setting"),
    [
        ("EdDSA", "missing.pem", "ROOMCAST_JWT__PRIVATE_KEY_FILE"),
        ("ES256", "ed25519.pem", "ROOMCAST_JWT__PRIVATE_KEY_FILE"),
        ("EdDSA", "ed25519.pem+bad-jwks", "ROOMCAST_JWT__JWKS_FILE"),
    ],
)
def test_bad_key_settings_stop_the_start_with_one_line(
    tmp_path: Path, redis_url: str, algorithm: str, key_file: str | None, setting: str
) -> None:
    write_key(tmp_path / "ed25519.pem", ed25519.Ed25519PrivateKey.generate())
    (tmp_path / "bad.jwks").write_text("{not json")
    env = auth_env(redis_url, ROOMCAST_JWT__ALGORITHM=algorithm, ROOMCAST_AUTH__PORT="0")
    if key_file is not None:
        name, _, jwks = key_file.partition("+")
        env["ROOMCAST_JWT__PRIVATE_KEY_FILE"] = str(tmp_path / name)
        if jwks:
            env["ROOMCAST_JWT__JWKS_FILE"] = str(tmp_path / "bad.jwks")
    result = _start_and_fail(env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert setting in lines[0]
