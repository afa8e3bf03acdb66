"""Session-wide real infrastructure: each test run gets its own Redis and Kafka.

Set ROOMCAST_REDIS__URL / ROOMCAST_KAFKA__BOOTSTRAP_SERVERS to use existing ones
instead; tests that must stop a server then get a private one of their own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from roomcast_harness.kafka_broker import KafkaBroker
from roomcast_harness.redis_server import RedisServer
from roomcast_harness.services import ServiceProcess


@dataclass(frozen=True)
class Infra:
    redis_url: str
    kafka_bootstrap: str

    def env(self, topic: str, **extra: str) -> dict[str, str]:
        """Service environment pointing at this infrastructure."""
        return {
            "ROOMCAST_REDIS__URL": self.redis_url,
            "ROOMCAST_KAFKA__BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "ROOMCAST_KAFKA__TOPIC": topic,
            "ROOMCAST_JWT__SECRET": "test-secret-0123456789abcdefghijklmnop",
            "OTEL_SDK_DISABLED": "true",
            **extra,
        }


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("ROOMCAST_REDIS__URL")
    if external:
        yield external
        return
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("ROOMCAST_KAFKA__BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    with KafkaBroker(tmp_path_factory.mktemp("kafka")) as broker:
        yield broker.bootstrap_servers


@pytest.fixture(scope="session")
def infra(redis_url: str, kafka_bootstrap: str) -> Infra:
    return Infra(redis_url=redis_url, kafka_bootstrap=kafka_bootstrap)


@pytest.fixture
def topic() -> str:
    """A Kafka topic of this test's own, so tests never see each other's records."""
    return f"roomcast.test.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private Redis this test may stop and start."""
    with RedisServer(tmp_path / "own-redis") as server:
        yield server


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[KafkaBroker]:
    """A private Kafka broker this test may stop and start."""
    with KafkaBroker(tmp_path / "own-kafka") as broker:
        yield broker


ServiceFactory = Callable[..., ServiceProcess]


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[ServiceFactory]:
    """Start `python -m roomcast_<service>` processes; all are stopped after the test."""
    started: list[ServiceProcess] = []

    def start(
        service: str,
        env: Mapping[str, str],
        *,
        name: str | None = None,
        wait_ready: bool = True,
        port: int | None = None,
    ) -> ServiceProcess:
        proc = ServiceProcess(service, env, tmp_path / "logs", port=port, name=name)
        proc.start(wait_ready=wait_ready)
        started.append(proc)
        return proc

    yield start
    for proc in reversed(started):
        proc.stop()
