"""HS256 tokens are verified without pyjwt: the same verdicts as pyjwt's path, token by token.

The reference is what the verifier did before (pyjwt's header read, then ``jwt.decode``
with the same options, then the same claim checks), run on every token here.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

import jwt
import orjson
import pytest

from roomcast_core.tokens import (
    HEADER_VERDICTS,
    REQUIRED_CLAIMS,
    TokenClaims,
    TokenError,
    TokenVerifier,
    VerificationKey,
)
from tests.integration.auth import forge

SECRET = "unit-secret-0123456789abcdefghijklmnopq"
OLD_SECRET = "old-secret-0123456789abcdefghijklmnopqr"
KEY = SECRET.encode()


def reference(verifier: TokenVerifier, token: str) -> TokenClaims | str:
    """pyjwt's verdict: the claims, or the refusal reason."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        return "malformed"
    if header.get("alg") != "HS256":
        return "bad_algorithm"
    for secret in (SECRET, OLD_SECRET):
        try:
            payload = jwt.decode(
                token,
                secret,
                algorithms=["HS256"],
                leeway=5,
                options={"require": list(REQUIRED_CLAIMS), "verify_iat": False},
            )
        except jwt.InvalidSignatureError:
            continue
        except jwt.ExpiredSignatureError:
            return "expired"
        except jwt.ImmatureSignatureError:
            return "not_yet_valid"
        except jwt.PyJWTError:
            return "malformed"
        try:
            return verifier._claims(payload)
        except TokenError as exc:
            return exc.reason
    return "bad_signature"


def ours(verifier: TokenVerifier, token: str) -> TokenClaims | str:
    try:
        return verifier.verify(token)
    except TokenError as exc:
        return exc.reason


def _segments(token: str) -> list[str]:
    return token.split(".")


def _flip_last_bits(token: str) -> str:
    # A 32-byte signature is 43 characters; the last one carries 2 unused bits.
    head, body, signature = _segments(token)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    value = alphabet.index(signature[-1])
    other = (value & ~3) | ((value + 1) & 3)
    return f"{head}.{body}.{signature[:-1]}{alphabet[other]}"


NOW = int(time.time())
CASES: dict[str, Callable[[], str]] = {
    "valid": lambda: forge.hs256(forge.claims(), KEY),
    "valid with rooms and topics": lambda: forge.hs256(
        forge.claims(rooms=["a"], topics=["t:x"]), KEY
    ),
    "signed with the previous secret": lambda: forge.hs256(forge.claims(), OLD_SECRET.encode()),
    "within the leeway after exp": lambda: forge.hs256(forge.claims(exp=NOW - 2), KEY),
    "nbf within the leeway": lambda: forge.hs256(forge.claims(nbf=NOW + 2), KEY),
    "empty aud": lambda: forge.hs256(forge.claims(aud=""), KEY),
    "no did": lambda: forge.hs256({k: v for k, v in forge.claims().items() if k != "did"}, KEY),
    "wrong key": lambda: forge.hs256(forge.claims(), b"another-secret-0123456789abcdefghij"),
    "tampered payload": lambda: forge.with_payload(
        forge.hs256(forge.claims(rooms=["mine"]), KEY), forge.claims()
    ),
    "tampered signature": lambda: forge.hs256(forge.claims(), KEY)[:-4] + "AAAA",
    "alg none": lambda: forge.unsigned(forge.claims()),
    "alg HS512 header": lambda: forge.hs256(forge.claims(), KEY, header={"alg": "HS512"}),
    "alg as a list": lambda: forge.hs256(forge.claims(), KEY, header={"alg": ["HS256"]}),
    "alg null": lambda: forge.hs256(forge.claims(), KEY, header={"alg": None}),
    "kid as an object": lambda: forge.hs256(forge.claims(), KEY, header={"kid": {"a": 1}}),
    "kid null": lambda: forge.hs256(forge.claims(), KEY, header={"kid": None}),
    "kid as a string": lambda: forge.hs256(forge.claims(), KEY, header={"kid": "k1"}),
    "crit extension": lambda: forge.hs256(forge.claims(), KEY, header={"crit": ["exp"]}),
    "expired": lambda: forge.hs256(forge.claims(exp=NOW - 120), KEY),
    "not yet valid": lambda: forge.hs256(forge.claims(nbf=NOW + 600), KEY),
    "nbf as text": lambda: forge.hs256(forge.claims(nbf="soon"), KEY),
    "no exp": lambda: forge.hs256({k: v for k, v in forge.claims().items() if k != "exp"}, KEY),
    "exp null": lambda: forge.hs256(forge.claims(exp=None), KEY),
    "no jti": lambda: forge.hs256({k: v for k, v in forge.claims().items() if k != "jti"}, KEY),
    "exp as a numeric string": lambda: forge.hs256(forge.claims(exp=str(NOW + 600)), KEY),
    "exp as a float": lambda: forge.hs256(forge.claims(exp=NOW + 600.5), KEY),
    "exp as text": lambda: forge.hs256(forge.claims(exp="later"), KEY),
    "exp as a bool": lambda: forge.hs256(forge.claims(exp=True), KEY),
    "iat as a string": lambda: forge.hs256(forge.claims(iat=str(NOW)), KEY),
    "sub as a number": lambda: forge.hs256(forge.claims(sub=42), KEY),
    "empty jti": lambda: forge.hs256(forge.claims(jti=""), KEY),
    "rooms as a string": lambda: forge.hs256(forge.claims(rooms="1001"), KEY),
    "topics with a number": lambda: forge.hs256(forge.claims(topics=["order", 7]), KEY),
    "aud present": lambda: forge.hs256(forge.claims(aud="someone"), KEY),
    "payload is a list": lambda: forge.hs256([1, 2], KEY),  # type: ignore[arg-type]
    "payload not JSON": lambda: _signed("eyJhbGciOiJIUzI1NiJ9", forge.b64(b"{nope")),
    "header not JSON": lambda: _signed(forge.b64(b"{alg"), forge.b64(orjson.dumps(forge.claims()))),
    "payload not UTF-8": lambda: _signed("eyJhbGciOiJIUzI1NiJ9", forge.b64(b"\xff\xfe")),
    "two parts": lambda: ".".join(_segments(forge.hs256(forge.claims(), KEY))[:2]),
    "four parts": lambda: forge.hs256(forge.claims(), KEY) + ".AAAA",
    "not base64": lambda: "!!!.@@@.###",
    "one char too many": lambda: forge.hs256(forge.claims(), KEY) + "A",
    "empty signature": lambda: ".".join(_segments(forge.hs256(forge.claims(), KEY))[:2]) + ".",
    "deep JSON header": lambda: _signed(forge.b64(b"[" * 3000), forge.b64(b"{}")),
}


def _signed(head: str, body: str) -> str:
    import hashlib
    import hmac

    signature = hmac.new(KEY, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{forge.b64(signature)}"


@pytest.fixture
def verifier() -> TokenVerifier:
    return TokenVerifier(
        [VerificationKey("HS256", SECRET), VerificationKey("HS256", OLD_SECRET)], leeway=5
    )


@pytest.mark.parametrize("case", list(CASES))
def test_the_same_verdict_as_pyjwt(verifier: TokenVerifier, case: str) -> None:
    token = CASES[case]()
    expected = reference(verifier, token)
    got = ours(verifier, token)
    if case == "deep JSON header":
        # pyjwt lets the RecursionError out (a 500); we refuse the token.
        assert got == "malformed"
        return
    assert got == expected, case


def test_a_non_canonical_signature_is_refused(verifier: TokenVerifier) -> None:
    token = forge.hs256(forge.claims(), KEY)
    assert isinstance(ours(verifier, token), TokenClaims)
    changed = _flip_last_bits(token)
    assert changed != token
    # Same signature bytes, another text: pyjwt refuses it too.
    assert ours(verifier, changed) == reference(verifier, changed) == "malformed"


def test_padded_segments_are_refused(verifier: TokenVerifier) -> None:
    head, body, _ = _segments(forge.hs256(forge.claims(), KEY))
    padded_body = base64.urlsafe_b64encode(base64.urlsafe_b64decode(body + "==")).decode()
    if padded_body == body:
        padded_body = body + "="  # already a multiple of 4: one padding char is wrong anyway
    token = _signed(head, padded_body)
    # RFC 7515 forbids padding; pyjwt tolerates it, we do not.
    assert ours(verifier, token) == "malformed"


def test_a_pem_looking_secret_keeps_pyjwt_refusing_it() -> None:
    pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----"
    verifier = TokenVerifier([VerificationKey("HS256", pem)])
    token = forge.hs256(forge.claims(), pem.encode())
    assert ours(verifier, token) == "malformed"


def test_kept_header_verdicts_change_no_verdict(verifier: TokenVerifier) -> None:
    # One verifier for every case, twice over: accepted headers are then answered from
    # what it kept, and every token still gets pyjwt's verdict (signature, claims).
    tokens = {case: make() for case, make in CASES.items() if case != "deep JSON header"}
    for _ in range(2):
        for case, token in tokens.items():
            assert ours(verifier, token) == reference(verifier, token), case
    assert ours(verifier, CASES["deep JSON header"]()) == "malformed"


def test_kept_header_verdicts_stay_few(verifier: TokenVerifier) -> None:
    assert isinstance(ours(verifier, forge.hs256(forge.claims(), KEY)), TokenClaims)
    for i in range(3 * HEADER_VERDICTS):
        token = forge.hs256(forge.claims(), KEY, header={"kid": f"k{i}"})
        assert isinstance(ours(verifier, token), TokenClaims)
        assert len(verifier._headers) <= HEADER_VERDICTS
    # a refused header is never kept, however often it comes
    for _ in range(3):
        assert ours(verifier, CASES["alg HS512 header"]()) == "bad_algorithm"
    assert all(alg == "HS256" for alg, _ in verifier._headers.values())
