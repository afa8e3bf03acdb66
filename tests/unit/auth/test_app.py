"""The application object: every route documented, bad key settings named."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from roomcast_auth.app import create_app
from roomcast_auth.keys import OPENAPI_KEY
from roomcast_auth.signing import signing_from_settings
from roomcast_core.settings import SettingsError, load_settings


def test_every_route_is_in_the_openapi_document() -> None:
    app = create_app(load_settings(environ={}))
    routes = {
        (route.resource.canonical, route.method.lower())
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    documented = {
        (path, method) for path, ops in app[OPENAPI_KEY]["paths"].items() for method in ops
    }
    assert routes == documented


def _pem(key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey, path: Path) -> str:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(path)


def test_asymmetric_signing_from_settings(tmp_path: Path) -> None:
    key_file = _pem(ed25519.Ed25519PrivateKey.generate(), tmp_path / "k.pem")
    settings = load_settings(
        environ={
            "ROOMCAST_JWT__ALGORITHM": "EdDSA",
            "ROOMCAST_JWT__PRIVATE_KEY_FILE": key_file,
            "ROOMCAST_JWT__KID": "k1",
        }
    )
    signing = signing_from_settings(settings.jwt)
    issued = signing.issuer.issue("u", "d", 60)
    assert signing.verifier.verify(issued.token).sub == "u"


@pytest.mark.parametrize(
    ("algorithm", "key", "setting"),
    [
        ("EdDSA", None, "ROOMCAST_JWT__PRIVATE_KEY_FILE"),
        ("EdDSA", "text", "ROOMCAST_JWT__PRIVATE_KEY_FILE"),
        ("ES256", "p384", "ROOMCAST_JWT__PRIVATE_KEY_FILE"),
        ("EdDSA", "p256", "ROOMCAST_JWT__PRIVATE_KEY_FILE"),
    ],
)
def test_unusable_keys_name_the_setting(
    tmp_path: Path, algorithm: str, key: str | None, setting: str
) -> None:
    keys = {
        "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
        "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    }
    environ = {"ROOMCAST_JWT__ALGORITHM": algorithm}
    if key == "text":
        (tmp_path / "k.pem").write_text("not a key")
        environ["ROOMCAST_JWT__PRIVATE_KEY_FILE"] = str(tmp_path / "k.pem")
    elif key is not None:
        environ["ROOMCAST_JWT__PRIVATE_KEY_FILE"] = _pem(keys[key](), tmp_path / "k.pem")
    with pytest.raises(SettingsError, match=setting):
        signing_from_settings(load_settings(environ=environ).jwt)
