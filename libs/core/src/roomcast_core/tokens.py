"""JWT connection tokens: issued by auth, verified by auth and every edge with this code.

Verification pins the algorithm to the configured keys: a token may only name an
algorithm some configured key is for (no ``none``, no HS256 token checked against
an EdDSA/ES256 public key), and every configured key of that algorithm (and kid,
when the token names one) is tried, so several keys can be valid during rotation.

HS256 tokens are checked here with the standard library (strict base64url segments,
HMAC-SHA256 compared in constant time, then the same claim rules pyjwt applies with
our options); pyjwt checks the asymmetric ones. Every edge handshake verifies a token,
and pyjwt's pure-Python segment checks, run twice (header, then decode), and its
per-call key preparation cost several times the HMAC itself.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, HMACAlgorithm, OKPAlgorithm

from roomcast_core.settings import JwtSettings

SYMMETRIC = "HS256"
ASYMMETRIC = ("EdDSA", "ES256")
# A connection token is a few hundred bytes; anything far larger is an attack.
MAX_TOKEN_LENGTH = 8192
# Claims every token must carry (pyjwt's `require` for the asymmetric ones).
REQUIRED_CLAIMS = ("exp", "iat", "sub", "jti")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
# Bound of exp and iat (seconds): far beyond any real date, well within a float.
MAX_TIME = 2**53
# Accepted token headers whose verdict a verifier keeps (see TokenVerifier._header).
HEADER_VERDICTS = 16

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


class StartupError(Exception):
    """A service cannot start as configured (no usable key, JWKS unreachable)."""


class TokenError(Exception):
    """A token that must be refused. ``reason`` is a short snake_case cause."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TokenClaims:
    sub: str
    did: str
    jti: str
    iat: int
    exp: int
    rooms: tuple[str, ...] | None = None
    topics: tuple[str, ...] | None = None

    def ttl(self, now: float | None = None) -> float:
        return self.exp - (time.time() if now is None else now)


@dataclass(frozen=True, slots=True)
class VerificationKey:
    algorithm: str
    key: str | bytes | PublicKey
    kid: str | None = None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    claims: TokenClaims


class TokenIssuer:
    """Mints tokens with one signing key."""

    def __init__(self, algorithm: str, key: str | PrivateKey, kid: str | None = None) -> None:
        self._algorithm = algorithm
        self._key = key
        self._kid = kid

    def issue(
        self,
        subject: str,
        device_id: str,
        ttl: int,
        *,
        rooms: Sequence[str] | None = None,
        topics: Sequence[str] | None = None,
        now: float | None = None,
    ) -> IssuedToken:
        issued_at = int(time.time() if now is None else now)
        claims = TokenClaims(
            sub=subject,
            did=device_id,
            jti=uuid.uuid4().hex,
            iat=issued_at,
            exp=issued_at + ttl,
            rooms=tuple(rooms) if rooms is not None else None,
            topics=tuple(topics) if topics is not None else None,
        )
        payload: dict[str, Any] = {
            "sub": claims.sub,
            "did": claims.did,
            "jti": claims.jti,
            "iat": claims.iat,
            "nbf": claims.iat,
            "exp": claims.exp,
        }
        if claims.rooms is not None:
            payload["rooms"] = list(claims.rooms)
        if claims.topics is not None:
            payload["topics"] = list(claims.topics)
        headers = {"kid": self._kid} if self._kid else None
        token = jwt.encode(payload, self._key, algorithm=self._algorithm, headers=headers)
        return IssuedToken(token=token, claims=claims)


def _segment(text: str) -> bytes:
    """One base64url segment of a compact JWS: unpadded and canonical, or refused."""
    if len(text) % 4 == 1 or _BASE64URL.fullmatch(text) is None:
        raise TokenError("malformed", "token is not three base64url segments")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise TokenError("malformed", "token segment does not decode") from None
    # Unused trailing bits would let several texts stand for one signature.
    if base64.urlsafe_b64encode(data).rstrip(b"=") != text.encode("ascii"):
        raise TokenError("malformed", "token segment is not canonical base64url")
    return data


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        raise TokenError("malformed", f"token {what} is not JSON") from None
    if not isinstance(value, dict):
        raise TokenError("malformed", f"token {what} is not a JSON object")
    return value


def _int_claim(payload: dict[str, Any], name: str) -> int:
    try:
        return int(payload[name])
    except (ValueError, TypeError, OverflowError):
        raise TokenError("malformed", f"claim {name!r} must be an integer") from None


def _hmac_secret(key: VerificationKey) -> bytes | None:
    """The HS256 secret as bytes, when the standard-library path may use it."""
    if key.algorithm != SYMMETRIC or not isinstance(key.key, str | bytes):
        return None
    try:
        # pyjwt refuses PEM/SSH-looking secrets; such a key keeps pyjwt's behaviour.
        prepared = HMACAlgorithm(HMACAlgorithm.SHA256).prepare_key(key.key)
    except jwt.PyJWTError:
        return None
    return bytes(prepared)


def _is_text(value: str) -> bool:
    """Whether `value` can be encoded: JSON's `\\udcff` escapes give lone surrogates,
    which every encoder downstream (orjson, Redis, the presence script) refuses."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _string_list(payload: dict[str, Any], name: str) -> tuple[str, ...] | None:
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TokenError("malformed", f"claim {name!r} must be a list of strings")
    if not all(_is_text(v) for v in value):
        raise TokenError("malformed", f"claim {name!r} holds text that is not valid Unicode")
    return tuple(value)


def bearer_credentials(header: str) -> str | None:
    """The credentials of an ``Authorization: Bearer <credentials>`` value, else None.

    They are returned even when not ASCII, so the caller can refuse them as invalid
    (401) rather than missing; ``verify`` and ``api.key_matches`` refuse them.
    """
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        return None
    return value


class TokenVerifier:
    """Checks signature, algorithm, expiry and not-before; never consults storage."""

    def __init__(self, keys: Sequence[VerificationKey], leeway: int = 0) -> None:
        if not keys:
            raise ValueError("at least one verification key is needed")
        self._keys = tuple(keys)
        self._algorithms = {k.algorithm for k in keys}
        self._leeway = leeway
        # header segment -> (algorithm, kid), for headers already accepted
        self._headers: dict[str, tuple[str, str | None]] = {}
        secrets = [(k, _hmac_secret(k)) for k in self._keys if k.algorithm == SYMMETRIC]
        # The standard-library HS256 path, only when it can take every HS256 key.
        self._secrets: tuple[bytes, ...] | None = (
            tuple(s for _, s in secrets if s is not None)
            if secrets and all(s is not None for _, s in secrets)
            else None
        )

    @property
    def keys(self) -> tuple[VerificationKey, ...]:
        return self._keys

    def verify(self, token: str, now: float | None = None) -> TokenClaims:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise TokenError("malformed", "token is empty or too long")
        # A JWT is base64url and dots. Header bytes that are not ASCII reach us as
        # surrogate escapes, which no encoder downstream accepts.
        if not token.isascii():
            raise TokenError("malformed", "token is not ASCII")
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError("malformed", "token is not three base64url segments")
        algorithm, kid = self._header(parts[0])
        if algorithm == SYMMETRIC and self._secrets is not None:
            return self._verify_hs256(parts, self._secrets, now)
        candidates = [
            k
            for k in self._keys
            if k.algorithm == algorithm and (kid is None or k.kid in (None, kid))
        ]
        if not candidates:
            raise TokenError("unknown_key", f"no key with id {kid!r}")
        last: TokenError | None = None
        for candidate in candidates:
            try:
                payload = jwt.decode(
                    token,
                    candidate.key,
                    algorithms=[candidate.algorithm],
                    leeway=self._leeway,
                    options={"require": list(REQUIRED_CLAIMS), "verify_iat": False},
                )
            except jwt.InvalidSignatureError:
                last = TokenError("bad_signature", "signature does not verify")
                continue
            except jwt.ExpiredSignatureError:
                raise TokenError("expired", "token has expired") from None
            except jwt.ImmatureSignatureError:
                raise TokenError("not_yet_valid", "token is not valid yet") from None
            except jwt.PyJWTError as exc:
                raise TokenError("malformed", f"token is invalid: {exc}") from None
            return self._claims(payload)
        assert last is not None
        raise last

    def _header(self, segment: str) -> tuple[str, str | None]:
        """The algorithm and kid of an accepted header segment, else TokenError.

        One issuer gives all its tokens the same header, so its verdict is kept (a few
        at most, for the keys of a rotation): decoding it again cost every handshake a
        third of the token check. Refused headers are not kept.
        """
        verdict = self._headers.get(segment)
        if verdict is not None:
            return verdict
        header = _json_object(_segment(segment), "header")
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self._algorithms:
            raise TokenError("bad_algorithm", f"algorithm {algorithm!r} is not accepted")
        kid = header.get("kid")
        if "kid" in header and not isinstance(kid, str):
            raise TokenError("malformed", "header kid must be a string")
        # No JWS extension is supported, so none may be marked critical (RFC 7515 4.1.11).
        if "crit" in header or "b64" in header:
            raise TokenError("malformed", "critical header extensions are not supported")
        if len(self._headers) >= HEADER_VERDICTS:
            self._headers.clear()  # varied headers cost what they did before, no more
        verdict = self._headers[segment] = (algorithm, kid)
        return verdict

    def _verify_hs256(
        self, parts: list[str], secrets: tuple[bytes, ...], now: float | None
    ) -> TokenClaims:
        """Signature, then the claim rules pyjwt applies to the asymmetric tokens."""
        body = _segment(parts[1])
        signature = _segment(parts[2])
        signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
        # Every key is tried (no early exit), so timing does not tell which one matched.
        matched = False
        for secret in secrets:
            expected = hmac.digest(secret, signing_input, "sha256")
            matched |= hmac.compare_digest(expected, signature)
        if not matched:
            raise TokenError("bad_signature", "signature does not verify")
        payload = _json_object(body, "payload")
        for name in REQUIRED_CLAIMS:
            if payload.get(name) is None:
                raise TokenError("malformed", f"token has no {name!r} claim")
        current = time.time() if now is None else now
        if "nbf" in payload and _int_claim(payload, "nbf") > current + self._leeway:
            raise TokenError("not_yet_valid", "token is not valid yet")
        if _int_claim(payload, "exp") <= current - self._leeway:
            raise TokenError("expired", "token has expired")
        # An audience was never configured: a token naming one is meant for someone else.
        if payload.get("aud"):
            raise TokenError("malformed", "token is for another audience")
        return self._claims(payload)

    def _claims(self, payload: dict[str, Any]) -> TokenClaims:
        sub, jti = payload.get("sub"), payload.get("jti")
        did = payload.get("did", sub)
        exp, iat = payload.get("exp"), payload.get("iat")
        if not (isinstance(sub, str) and isinstance(jti, str) and isinstance(did, str)):
            raise TokenError("malformed", "claims sub, jti and did must be strings")
        if not (sub and jti and did):
            raise TokenError("malformed", "claims sub, jti and did must not be empty")
        if not (_is_text(sub) and _is_text(jti) and _is_text(did)):
            raise TokenError("malformed", "claims sub, jti and did must be valid Unicode text")
        if (
            not (isinstance(exp, int) and isinstance(iat, int))
            or isinstance(exp, bool)
            or isinstance(iat, bool)
        ):
            raise TokenError("malformed", "claims exp and iat must be integers")
        # Deadlines are computed in floats: an integer no float can hold would fail
        # every step after the check, so it is refused here.
        if not (-MAX_TIME < exp < MAX_TIME and -MAX_TIME < iat < MAX_TIME):
            raise TokenError("malformed", "claims exp and iat are out of range")
        return TokenClaims(
            sub=sub,
            did=did,
            jti=jti,
            iat=iat,
            exp=exp,
            rooms=_string_list(payload, "rooms"),
            topics=_string_list(payload, "topics"),
        )


# ---- keys from settings ---------------------------------------------------


def load_private_key(path: str) -> PrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: only Ed25519 and P-256 private keys are supported")
    return key


def _algorithm_of(key: PrivateKey | PublicKey) -> str:
    return (
        "EdDSA"
        if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey)
        else "ES256"
    )


def public_jwk(key: PublicKey, kid: str) -> dict[str, Any]:
    if isinstance(key, ed25519.Ed25519PublicKey):
        jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(key))
    else:
        jwk = json.loads(ECAlgorithm.to_jwk(key))
    jwk.update({"kid": kid, "alg": _algorithm_of(key), "use": "sig"})
    return jwk


def keys_from_jwks(document: dict[str, Any]) -> list[VerificationKey]:
    """Verification keys from a JWKS document (OKP Ed25519 and EC P-256 only)."""
    keys: list[VerificationKey] = []
    for entry in document.get("keys", []):
        kty = entry.get("kty")
        if kty == "OKP":
            key: Any = OKPAlgorithm.from_jwk(json.dumps(entry))
        elif kty == "EC":
            key = ECAlgorithm.from_jwk(json.dumps(entry))
        else:
            continue
        if isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
            keys.append(VerificationKey(_algorithm_of(key), key, entry.get("kid")))
    return keys


def issuer_from_settings(settings: JwtSettings) -> TokenIssuer:
    if settings.algorithm == SYMMETRIC:
        return TokenIssuer(SYMMETRIC, settings.secret)
    key = load_private_key(settings.private_key_file)
    return TokenIssuer(_algorithm_of(key), key, settings.kid or None)


def fetch_jwks(url: str, deadline: float) -> dict[str, Any]:
    """GET a JWKS document, retrying until `deadline` seconds have passed.

    Verification keys are read once at start: rotate by publishing the new key in the
    JWKS, restarting the edges (rolling), and only then signing with it.
    """
    import urllib.error
    import urllib.request

    give_up = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - operator's URL
                document: dict[str, Any] = json.loads(response.read())
                return document
        except (OSError, ValueError, urllib.error.URLError) as exc:
            if time.monotonic() >= give_up:
                raise StartupError(
                    f"cannot read the JWKS at {url} (ROOMCAST_JWT__JWKS_URL): {exc}"
                ) from None
            time.sleep(1.0)


def verifier_from_settings(
    settings: JwtSettings, jwks: dict[str, Any] | None = None
) -> TokenVerifier:
    """All keys this process accepts: the current one and those kept for rotation."""
    keys: list[VerificationKey] = []
    if settings.algorithm == SYMMETRIC:
        keys.extend(
            VerificationKey(SYMMETRIC, s)
            for s in (settings.secret, *settings.previous_secrets)
            if s
        )
    else:
        if settings.private_key_file:
            private = load_private_key(settings.private_key_file)
            keys.append(
                VerificationKey(_algorithm_of(private), private.public_key(), settings.kid or None)
            )
        if settings.jwks_file:
            keys.extend(keys_from_jwks(json.loads(Path(settings.jwks_file).read_text())))
        if settings.jwks_url:
            keys.extend(keys_from_jwks(fetch_jwks(settings.jwks_url, settings.jwks_timeout)))
    if jwks:
        keys.extend(keys_from_jwks(jwks))
    if not keys:
        raise StartupError(
            f"no {settings.algorithm} verification key: set ROOMCAST_JWT__PRIVATE_KEY_FILE, "
            "ROOMCAST_JWT__JWKS_FILE or ROOMCAST_JWT__JWKS_URL"
        )
    return TokenVerifier(keys, leeway=settings.leeway)


def jwks_document(verifier: TokenVerifier) -> dict[str, Any]:
    """Public keys as a JWKS document; HS256 secrets are never published."""
    return {
        "keys": [
            public_jwk(k.key, k.kid or "")
            for k in verifier.keys
            if isinstance(k.key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey)
        ]
    }


# ---- verification including revocation ---------------------------------------


class RevocationChecker(Protocol):
    """Port: tells whether a token id has been revoked (Redis in production)."""

    async def is_revoked(self, jti: str) -> bool: ...


async def authenticate(
    token: str, verifier: TokenVerifier, revocations: RevocationChecker | None
) -> TokenClaims:
    """The one check auth and every edge run: signature, algorithm, time, revocation.

    A revocation store that cannot be reached propagates its error: the caller
    decides whether to fail closed (edge connect) or report 503.
    """
    claims = verifier.verify(token)
    if revocations is not None and await revocations.is_revoked(claims.jti):
        raise TokenError("revoked", "token has been revoked")
    return claims
