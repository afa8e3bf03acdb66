"""The services against a Kafka that wants SASL over TLS and a Redis that wants a
password over TLS: a message goes from the publisher to a socket on an edge, and a
refused password or an untrusted certificate is named by /readyz, not waited on."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from roomcast_core.kafka_link import kafka_options, start_client
from roomcast_core.settings import KafkaSettings
from roomcast_harness.certs import CertAuthority, Issued
from roomcast_harness.kafka_broker import KafkaBroker
from roomcast_harness.redis_server import RedisServer
from tests.conftest import ServiceFactory
from tests.integration.links.conftest import KAFKA_USER, WAIT, eventually, link_env

TIMEOUT = aiohttp.ClientTimeout(total=WAIT)


async def _call(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(timeout=TIMEOUT) as session,
        session.request(method, url, json=body) as response,
    ):
        return response.status, await response.json(content_type=None)


def _settings(
    kafka: KafkaBroker, authority: CertAuthority, client: Issued, **changes: str
) -> KafkaSettings:
    fields: dict[str, Any] = {
        "bootstrap_servers": kafka.secure_bootstrap_servers,
        "topic": "unused",
        "partitions": 1,
        "replication_factor": 1,
        "request_timeout": 10.0,
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": KAFKA_USER[0],
        "sasl_password": KAFKA_USER[1],
        "ssl_ca_file": str(authority.ca_pem),
        "ssl_cert_file": str(client.cert),
        "ssl_key_file": str(client.key),
    }
    return KafkaSettings(**{**fields, **changes})


async def test_a_message_travels_over_sasl_ssl_and_redis_tls(
    secure_kafka: KafkaBroker,
    secure_redis: RedisServer,
    authority: CertAuthority,
    client_cert: Issued,
    topic: str,
    start_service: ServiceFactory,
) -> None:
    env = link_env(secure_kafka, secure_redis, authority, client_cert, topic)
    # Ready means each one's Redis (and the publisher's and edge's Kafka) answered.
    auth = start_service("auth", env)
    publisher = start_service("publisher", env)
    edge = start_service("edge", env)

    status, issued = await _call(
        "POST", f"{auth.url}/v1/tokens", {"device_id": "d1", "user_id": "u1", "is_login": True}
    )
    assert status == 201, issued
    token = issued["token"]
    # auth writes the heartbeat to the TLS Redis; the edge reads it from there.
    status, _ = await _call("GET", f"{auth.url}/heartbeat?token={token}")
    assert status == 200

    query = urllib.parse.urlencode({"token": token, "roomIds": "1001"})
    ws_url = edge.url.replace("http://", "ws://") + f"/ws?{query}"
    async with websockets.connect(ws_url, open_timeout=WAIT, ping_interval=None) as ws:
        connected = json.loads(await ws.recv())
        assert connected["action"] == "connected"
        assert connected["rooms"] == ["1001"]
        status, receipt = await _call(
            "POST",
            f"{publisher.url}/v1/messages",
            {"room": "1001", "type": "event", "payload": {"over": "sasl_ssl"}},
        )
        assert status == 202, receipt
        push = json.loads(await ws.recv())
    assert push["payload"] == {"over": "sasl_ssl"}
    assert push["room"] == "1001"
    assert push["meta"]["position"] == receipt["position"]


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_every_sasl_mechanism_produces_over_tls(
    secure_kafka: KafkaBroker,
    authority: CertAuthority,
    client_cert: Issued,
    topic: str,
    mechanism: str,
) -> None:
    settings = _settings(secure_kafka, authority, client_cert, sasl_mechanism=mechanism)
    producer = AIOKafkaProducer(**kafka_options(settings), acks="all")
    await start_client(producer, settings)
    try:
        record = await producer.send_and_wait(topic, b"hello")
    finally:
        await producer.stop()
    assert record.offset >= 0


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"sasl_password": "not-the-password"}, "Authentication failed"),
        ({"sasl_username": "nobody"}, "Authentication failed"),
        ({"ssl_ca_file": ""}, "CERTIFICATE_VERIFY_FAILED"),
        # The broker wants a certificate too (mutual TLS); under TLS 1.3 it refuses after
        # the handshake, which the client sees as the connection closing.
        ({"ssl_cert_file": "", "ssl_key_file": ""}, "closed"),
    ],
)
async def test_a_refused_connection_says_why(
    secure_kafka: KafkaBroker,
    authority: CertAuthority,
    client_cert: Issued,
    changes: dict[str, str],
    says: str,
) -> None:
    settings = _settings(secure_kafka, authority, client_cert, **changes)
    producer = AIOKafkaProducer(**kafka_options(settings))
    try:
        with pytest.raises(KafkaConnectionError) as refused:
            await start_client(producer, settings)
    finally:
        await producer.stop()
    assert says in str(refused.value)
    assert secure_kafka.secure_bootstrap_servers in str(refused.value)


async def test_readiness_names_a_wrong_password_and_an_untrusted_broker(
    secure_kafka: KafkaBroker,
    secure_redis: RedisServer,
    authority: CertAuthority,
    client_cert: Issued,
    topic: str,
    start_service: ServiceFactory,
) -> None:
    # JSON lines carry each line's fields (the reason), as in a cluster.
    env = {**link_env(secure_kafka, secure_redis, authority, client_cert, topic)}
    env["ROOMCAST_LOG__FORMAT"] = "json"
    edge = start_service(
        "edge", {**env, "ROOMCAST_KAFKA__SASL_PASSWORD": "wrong"}, wait_ready=False
    )
    publisher = start_service(
        "publisher", {**env, "ROOMCAST_KAFKA__SSL_CA_FILE": ""}, wait_ready=False
    )

    def explained(url: str, says: str) -> Any:
        async def check() -> str | None:
            try:
                status, body = await _call("GET", f"{url}/readyz")
            except aiohttp.ClientError:
                return None  # not listening yet
            text = json.dumps(body)
            if status == 503 and says in text:
                return text
            return None

        return check

    edge_reason = await eventually(
        explained(edge.url, "Authentication failed"), "the edge's readiness to name SASL"
    )
    publisher_reason = await eventually(
        explained(publisher.url, "CERTIFICATE_VERIFY_FAILED"),
        "the publisher's readiness to name the certificate",
    )
    assert "kafka" in edge_reason
    assert "kafka" in publisher_reason
    assert not edge.exited
    assert not publisher.exited
    # The log says it too, from the first failure on (kubectl logs is where one looks).
    assert _logged(publisher.log_path, "kafka link down", "CERTIFICATE_VERIFY_FAILED")
    assert _logged(edge.log_path, "kafka source failed", "Authentication failed")


def _logged(path: Path, message: str, reason: str) -> bool:
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if (
            isinstance(entry, dict)
            and entry.get("msg", "").startswith(message)
            and reason in json.dumps(entry)
        ):
            return True
    return False
