"""How every aiokafka client reaches the brokers: security protocol, SASL and TLS.

The producer, the consumers and the admin clients all take kafka_options(settings);
start_client() turns aiokafka's bare "Unable to bootstrap" into the broker's own
reason (a refused password, an untrusted certificate), so /readyz and the log say it.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, Protocol

# aiokafka's own connection factory (connect, TLS, SASL), outside its documented API;
# tests/integration/links/test_kafka_sasl_ssl.py fails when it changes.
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError

from roomcast_core.settings import KafkaSettings

# Seconds one bootstrap server gets to explain itself.
PROBE_SECONDS = 5.0


class Startable(Protocol):
    async def start(self) -> None: ...


def tls_context(settings: KafkaSettings) -> ssl.SSLContext:
    """The brokers are verified (host name included) against ssl_ca_file or the system."""
    context = ssl.create_default_context(cafile=settings.ssl_ca_file or None)
    if settings.ssl_cert_file:
        context.load_cert_chain(settings.ssl_cert_file, settings.ssl_key_file)
    return context


def kafka_options(settings: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments every aiokafka client of ours is built with."""
    protocol = settings.security_protocol
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": protocol,
    }
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = tls_context(settings)
    if protocol.startswith("SASL_"):
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = settings.sasl_password
    return options


async def start_client(client: Startable, settings: KafkaSettings) -> None:
    """client.start(), and when no broker could be reached, say why."""
    try:
        await client.start()
    except KafkaConnectionError as exc:
        reason = await why_unreachable(settings)
        if reason is None:
            raise
        raise KafkaConnectionError(
            f"no broker of {settings.bootstrap_servers} could be used: {reason}"
        ) from exc


async def why_unreachable(settings: KafkaSettings) -> str | None:
    """The first bootstrap server's refusal (connect, TLS or SASL), None if all answer."""
    options = kafka_options(settings)
    del options["bootstrap_servers"]
    for server in settings.bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            async with asyncio.timeout(PROBE_SECONDS):
                conn = await create_conn(
                    host.strip("[]"),
                    int(port),
                    request_timeout_ms=int(PROBE_SECONDS * 1000),
                    **options,
                )
        except Exception as exc:  # what the broker (or the network) said is the answer
            return f"{server.strip()}: {_describe(exc)}"
        conn.close()
    return None


def _describe(exc: BaseException) -> str:
    text = str(exc) or "no answer"
    name = type(exc).__name__
    return text if name in text else f"{name}: {text}"
