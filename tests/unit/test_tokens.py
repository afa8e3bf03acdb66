from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from roomcast_core.tokens import (
    TokenError,
    TokenIssuer,
    TokenVerifier,
    VerificationKey,
    bearer_credentials,
    jwks_document,
    keys_from_jwks,
)

SECRET = "unit-test-secret-0123456789abcdefghij"


def test_hs256_round_trip_with_claims() -> None:
    issued = TokenIssuer("HS256", SECRET).issue("u1", "d1", 60, rooms=["1001"], topics=["order"])
    claims = TokenVerifier([VerificationKey("HS256", SECRET)]).verify(issued.token)
    assert claims == issued.claims
    assert claims.sub == "u1"
    assert claims.did == "d1"
    assert claims.rooms == ("1001",)
    assert claims.topics == ("order",)
    assert claims.exp - claims.iat == 60


@pytest.mark.parametrize(
    "make_key",
    [ed25519.Ed25519PrivateKey.generate, lambda: ec.generate_private_key(ec.SECP256R1())],
)
def test_asymmetric_round_trip_through_jwks(make_key: object) -> None:
    assert callable(make_key)
    private = make_key()
    algorithm = "EdDSA" if isinstance(private, ed25519.Ed25519PrivateKey) else "ES256"
    issued = TokenIssuer(algorithm, private, kid="k1").issue("u", "d", 60)
    own = TokenVerifier([VerificationKey(algorithm, private.public_key(), "k1")])
    document = jwks_document(own)
    assert document["keys"][0]["kid"] == "k1"
    assert "d" not in document["keys"][0]  # never the private part
    edge = TokenVerifier(keys_from_jwks(document))
    assert edge.verify(issued.token).sub == "u"


def test_rotation_accepts_old_and_new_secret() -> None:
    verifier = TokenVerifier(
        [
            VerificationKey("HS256", "new-secret-0123456789abcdefghijklmn"),
            VerificationKey("HS256", SECRET),
        ]
    )
    old = TokenIssuer("HS256", SECRET).issue("u", "d", 60).token
    new = TokenIssuer("HS256", "new-secret-0123456789abcdefghijklmn").issue("u", "d", 60).token
    assert verifier.verify(old).sub == verifier.verify(new).sub == "u"


def _reason(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(TokenError) as caught:
        verifier.verify(token)
    return caught.value.reason


def test_refusals() -> None:
    verifier = TokenVerifier([VerificationKey("HS256", SECRET)])
    now = int(time.time())
    base = {"sub": "u", "did": "d", "jti": "j", "iat": now, "exp": now + 60}
    assert (
        _reason(
            verifier, jwt.encode(base, "wrong-secret-0123456789abcdefghijklm", algorithm="HS256")
        )
        == "bad_signature"
    )
    assert _reason(verifier, jwt.encode(base, "", algorithm="none")) == "bad_algorithm"
    expired = {**base, "iat": now - 120, "exp": now - 60}
    assert _reason(verifier, jwt.encode(expired, SECRET, algorithm="HS256")) == "expired"
    future = {**base, "nbf": now + 600}
    assert _reason(verifier, jwt.encode(future, SECRET, algorithm="HS256")) == "not_yet_valid"
    missing = {k: v for k, v in base.items() if k != "exp"}
    assert _reason(verifier, jwt.encode(missing, SECRET, algorithm="HS256")) == "malformed"
    bad_rooms = {**base, "rooms": "1001"}
    assert _reason(verifier, jwt.encode(bad_rooms, SECRET, algorithm="HS256")) == "malformed"
    for garbage in ["", "abc", "a.b.c", "x" * 10000, "eyJhbGciOiJIUzI1NiJ9.e30."]:
        assert _reason(verifier, garbage) in {"malformed", "bad_signature"}


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "\udcff-user"},
        {"did": "dev-\ud800"},
        {"jti": "\udfff"},
        {"rooms": ["1001", "\udcff"]},
        {"topics": ["\ud83d"]},
        {"exp": 2**70},
        {"iat": -(2**70)},
    ],
    ids=["sub", "did", "jti", "rooms", "topics", "huge-exp", "huge-iat"],
)
def test_claims_that_no_encoder_or_clock_can_take_are_malformed(claims: dict[str, object]) -> None:
    """Signed and otherwise valid, on both verification paths (HS256 and pyjwt)."""
    now = int(time.time())
    payload = {"sub": "u", "did": "d", "jti": "j", "iat": now, "exp": now + 60, **claims}
    private = ed25519.Ed25519PrivateKey.generate()
    cases = [
        (TokenVerifier([VerificationKey("HS256", SECRET)]), SECRET, "HS256"),
        (TokenVerifier([VerificationKey("EdDSA", private.public_key())]), private, "EdDSA"),
    ]
    for verifier, key, algorithm in cases:
        token = jwt.encode(payload, key, algorithm=algorithm)  # type: ignore[arg-type]
        assert _reason(verifier, token) == "malformed", algorithm


def test_text_beyond_ascii_is_fine() -> None:
    issued = TokenIssuer("HS256", SECRET).issue("zoë 🚀", "appareil-é", 60, rooms=["salle-ü"])
    claims = TokenVerifier([VerificationKey("HS256", SECRET)]).verify(issued.token)
    assert (claims.sub, claims.did, claims.rooms) == ("zoë 🚀", "appareil-é", ("salle-ü",))


def test_hs256_signed_with_public_key_is_refused() -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    verifier = TokenVerifier([VerificationKey("EdDSA", private.public_key(), "k1")])
    now = int(time.time())
    claims = {"sub": "u", "did": "d", "jti": "j", "iat": now, "exp": now + 60}
    # The classic confusion attack: HMAC keyed with the public PEM.

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = (
        b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
        + "."
        + b64(json.dumps(claims).encode())
    )
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    assert _reason(verifier, signing_input + "." + b64(signature)) == "bad_algorithm"


@pytest.mark.parametrize("alg", [["HS256"], {"a": 1}, None, 7])
def test_a_non_string_algorithm_is_refused(alg: object) -> None:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": "u"}).encode())
    verifier = TokenVerifier([VerificationKey("HS256", SECRET)])
    assert _reason(verifier, f"{header}.{body}.c2ln") in {"bad_algorithm", "malformed"}


@pytest.mark.parametrize(
    "header",
    ["Bearer \udcff\udcfe", "bearer é", "Bearer  abc.def.ghi ", "Basic abc", "Bearer", "Bearer  "],
)
def test_bearer_credentials_and_non_ascii_tokens(header: str) -> None:
    credentials = bearer_credentials(header)
    if header.lower().startswith("bearer") and header[6:].strip():
        assert credentials == header[6:].strip()
    else:
        assert credentials is None
    if credentials is not None and not credentials.isascii():
        with pytest.raises(TokenError) as caught:
            TokenVerifier([VerificationKey("HS256", SECRET)]).verify(credentials)
        assert caught.value.reason == "malformed"
