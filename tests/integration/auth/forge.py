"""Hand-made JWTs for the refusal tests: what pyjwt would refuse to produce for us."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization

from roomcast_core.tokens import PrivateKey


def write_key(path: Path, key: PrivateKey) -> Path:
    """A private key as the unencrypted PKCS#8 PEM file auth reads."""
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides: Any) -> dict[str, Any]:
    """Claims that would be valid right now, with the given ones replaced."""
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "forged-user",
        "did": "forged-device",
        "jti": uuid.uuid4().hex,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    base.update(overrides)
    return base


def hs256(payload: dict[str, Any], key: bytes, header: dict[str, Any] | None = None) -> str:
    """HS256 by hand, so any bytes (a PEM public key too) can serve as the secret."""
    head = b64(orjson.dumps({"alg": "HS256", "typ": "JWT", **(header or {})}))
    body = b64(orjson.dumps(payload))
    signature = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


def unsigned(payload: dict[str, Any], alg: str = "none") -> str:
    head = b64(orjson.dumps({"alg": alg, "typ": "JWT"}))
    return f"{head}.{b64(orjson.dumps(payload))}."


def with_payload(token: str, payload: dict[str, Any]) -> str:
    """The same header and signature over a different payload (tampering)."""
    head, _, signature = token.split(".")
    return f"{head}.{b64(orjson.dumps(payload))}.{signature}"


def header(token: str) -> dict[str, Any]:
    head = token.split(".")[0]
    decoded: dict[str, Any] = orjson.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    return decoded
