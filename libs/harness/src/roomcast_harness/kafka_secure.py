"""A SASL_SSL listener for the harness's Kafka broker, as managed Kafkas offer one.

Clients authenticate with PLAIN or SCRAM-SHA-256/512 over TLS; the broker's keystore
comes from roomcast_harness.certs. SCRAM credentials are written when the storage is
formatted (KRaft's `--add-scram`), PLAIN ones sit in the listener's JAAS line.
Brokers and the controller keep talking PLAINTEXT among themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class SecureListener:
    keystore: Path  # PKCS#12 with the broker's key and certificate
    truststore: Path  # PKCS#12 with the CA client certificates are checked against
    store_password: str
    # (name, password) of every user, for each mechanism
    users: tuple[tuple[str, str], ...]
    # "required": clients must also show a certificate the truststore's CA signed
    # (mutual TLS); "requested": they may
    client_auth: str = "requested"

    def properties(self) -> str:
        """server.properties lines configuring the listener named SASL_SSL."""
        plain_users = " ".join(f'user_{name}="{password}"' for name, password in self.users)
        prefix = "listener.name.sasl_ssl"
        lines = [
            f"sasl.enabled.mechanisms={','.join(MECHANISMS)}",
            f"{prefix}.plain.sasl.jaas.config="
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};",
            *(
                f"{prefix}.{m.lower()}.sasl.jaas.config="
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                for m in MECHANISMS[1:]
            ),
            "ssl.keystore.type=PKCS12",
            f"ssl.keystore.location={self.keystore}",
            f"ssl.keystore.password={self.store_password}",
            f"ssl.key.password={self.store_password}",
            "ssl.truststore.type=PKCS12",
            f"ssl.truststore.location={self.truststore}",
            f"ssl.truststore.password={self.store_password}",
            # Unprefixed, a SASL_SSL listener ignores it (KIP-684).
            f"{prefix}.ssl.client.auth={self.client_auth}",
        ]
        return "\n".join(lines) + "\n"

    def format_args(self) -> list[str]:
        """`kafka-storage format` arguments creating the SCRAM credentials."""
        args: list[str] = []
        for mechanism in MECHANISMS[1:]:
            for name, password in self.users:
                args += ["--add-scram", f"{mechanism}=[name={name},password={password}]"]
        return args
