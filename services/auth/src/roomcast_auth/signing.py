"""Issuer and verifier from the settings, with start-up errors that name the setting."""

from __future__ import annotations

from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from roomcast_core.settings import JwtSettings, SettingsError
from roomcast_core.tokens import (
    SYMMETRIC,
    TokenIssuer,
    TokenVerifier,
    issuer_from_settings,
    load_private_key,
    verifier_from_settings,
)


@dataclass(frozen=True, slots=True)
class Signing:
    issuer: TokenIssuer
    verifier: TokenVerifier


def _refuse(name: str, problem: str) -> SettingsError:
    env = "ROOMCAST_JWT__" + name.upper()
    return SettingsError(f"invalid setting: jwt.{name} {problem} ({env})")


def _check_private_key(settings: JwtSettings) -> None:
    if not settings.private_key_file:
        raise _refuse("private_key_file", f"is required when jwt.algorithm is {settings.algorithm}")
    try:
        key = load_private_key(settings.private_key_file)
    except (OSError, ValueError, TypeError) as exc:
        raise _refuse("private_key_file", f"cannot be used: {exc}") from None
    fits = (
        isinstance(key, ed25519.Ed25519PrivateKey)
        if settings.algorithm == "EdDSA"
        else isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)
    )
    if not fits:
        wanted = "an Ed25519" if settings.algorithm == "EdDSA" else "a P-256"
        raise _refuse("private_key_file", f"must hold {wanted} key for {settings.algorithm}")


def signing_from_settings(settings: JwtSettings) -> Signing:
    if settings.algorithm != SYMMETRIC:
        _check_private_key(settings)
    elif not settings.secret:
        raise _refuse("secret", "is required for HS256")
    try:
        verifier = verifier_from_settings(settings)
    except (OSError, ValueError, TypeError, KeyError, jwt.PyJWTError) as exc:
        # The private key is known to be good by now: only the rotation JWKS file is left.
        raise _refuse("jwks_file", f"cannot be used: {exc}") from None
    return Signing(issuer=issuer_from_settings(settings), verifier=verifier)
