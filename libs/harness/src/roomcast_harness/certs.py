"""A throwaway certificate authority made with the JDK's keytool, for TLS tests.

Kafka reads the PKCS#12 keystores keytool writes; Redis and Python clients read PEM
files, exported from those keystores with openssl. Nothing here is fit for production:
one password guards every store.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from roomcast_harness.debian import ensure_program

STORE_PASSWORD = "roomcast-test-store"  # noqa: S105 - throwaway stores of tests
VALID_DAYS = "7"


@dataclass(frozen=True)
class Issued:
    """One key and its certificate, in both forms."""

    keystore: Path  # PKCS#12: the key, its certificate and the CA's
    cert: Path  # PEM: the certificate
    key: Path  # PEM: the unencrypted private key


def _keytool() -> str:
    found = shutil.which("keytool")
    if found is None:
        raise RuntimeError("keytool (from a JDK) is needed to make test certificates")
    return found


class CertAuthority:
    """A CA (ca.pem, truststore.p12) that issues certificates for loopback servers."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.password = STORE_PASSWORD
        self.ca_pem = workdir / "ca.pem"
        self.truststore = workdir / "truststore.p12"
        self._ca_store = workdir / "ca.p12"

    def _keytool(self, *args: str) -> None:
        subprocess.run(
            [_keytool(), *args, "-storepass", self.password, "-noprompt"],
            check=True,
            capture_output=True,
        )

    def create(self) -> CertAuthority:
        self.workdir.mkdir(parents=True, exist_ok=True)
        ca = ["-keystore", str(self._ca_store), "-storetype", "PKCS12"]
        self._keytool(
            "-genkeypair", "-alias", "ca", "-keyalg", "RSA", "-keysize", "2048",
            "-dname", "CN=roomcast test CA", "-validity", VALID_DAYS,
            "-ext", "bc:c", "-ext", "KeyUsage:critical=keyCertSign,cRLSign", *ca,
        )  # fmt: skip
        self._keytool("-exportcert", "-rfc", "-alias", "ca", "-file", str(self.ca_pem), *ca)
        self._keytool(
            "-importcert", "-alias", "ca", "-file", str(self.ca_pem),
            "-keystore", str(self.truststore), "-storetype", "PKCS12",
        )  # fmt: skip
        return self

    def issue(self, name: str, hosts: tuple[str, ...] = ("localhost", "127.0.0.1")) -> Issued:
        """A certificate for `hosts` (server and client use), signed by this CA."""
        store = self.workdir / f"{name}.p12"
        csr, signed = self.workdir / f"{name}.csr", self.workdir / f"{name}.pem"
        own = ["-keystore", str(store), "-storetype", "PKCS12"]
        san = "SAN=" + ",".join(
            f"ip:{h}" if h.replace(".", "").isdigit() else f"dns:{h}" for h in hosts
        )
        self._keytool(
            "-genkeypair", "-alias", name, "-keyalg", "RSA", "-keysize", "2048",
            "-dname", f"CN={name}", "-validity", VALID_DAYS, *own,
        )  # fmt: skip
        self._keytool("-certreq", "-alias", name, "-file", str(csr), *own)
        self._keytool(
            "-gencert", "-alias", "ca", "-keystore", str(self._ca_store),
            "-infile", str(csr), "-outfile", str(signed), "-rfc", "-validity", VALID_DAYS,
            "-ext", san, "-ext", "KeyUsage:critical=digitalSignature,keyEncipherment",
            "-ext", "ExtendedKeyUsage=serverAuth,clientAuth",
        )  # fmt: skip
        self._keytool("-importcert", "-alias", "ca", "-file", str(self.ca_pem), *own)
        self._keytool("-importcert", "-alias", name, "-file", str(signed), *own)
        key = self.workdir / f"{name}-key.pem"
        subprocess.run(
            [
                ensure_program("openssl", "openssl"), "pkcs12", "-in", str(store),
                "-nocerts", "-nodes", "-passin", f"pass:{self.password}", "-out", str(key),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        key.chmod(0o600)
        return Issued(keystore=store, cert=signed, key=key)
