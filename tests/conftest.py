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
from roomcast_harness.nginx import NginxProxy
from roomcast_harness.redis_server import RedisServer
from roomcast_harness.services import ServiceProcess

# The buses a test module runs on when it asks for both (see `infra_on`).
BUSES = ["kafka", "redis"]
NO_KAFKA = "127.0.0.1:1"  # what a Redis-bus stack is given: it must never use Kafka


@dataclass(frozen=True)
class Infra:
    redis_url: str
    kafka_bootstrap: str
    # "kafka", or "redis": the bus is Redis Streams named after the test's topic
    bus: str = "kafka"

    def env(self, topic: str, **extra: str) -> dict[str, str]:
        """Service environment pointing at this infrastructure."""
        bus = {"ROOMCAST_BUS__KIND": "redis", "ROOMCAST_BUS__STREAM": topic}
        return {
            "ROOMCAST_REDIS__URL": self.redis_url,
            "ROOMCAST_KAFKA__BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "ROOMCAST_KAFKA__TOPIC": topic,
            "ROOMCAST_JWT__SECRET": "test-secret-0123456789abcdefghijklmnop",
            "OTEL_SDK_DISABLED": "true",
            **(bus if self.bus == "redis" else {}),
            **extra,
        }


def infra_on(request: pytest.FixtureRequest) -> Infra:
    """The session's infrastructure for the bus `request.param` names.

    A module runs on both buses by overriding `infra` with
    ``@pytest.fixture(scope="module", params=BUSES)`` returning ``infra_on(request)``;
    Kafka is started only when a Kafka-bus test runs.
    """
    if request.param == "redis":
        return Infra(request.getfixturevalue("aof_redis_url"), NO_KAFKA, bus="redis")
    return Infra(request.getfixturevalue("redis_url"), request.getfixturevalue("kafka_bootstrap"))


@pytest.fixture(scope="session")
def aof_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis with AOF on, as the Redis Streams bus wants it by default."""
    external = os.environ.get("ROOMCAST_REDIS__URL")
    if external:
        yield external
        return
    with RedisServer(tmp_path_factory.mktemp("aof-redis"), appendonly=True) as server:
        yield server.url


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


NginxFactory = Callable[..., NginxProxy]


@pytest.fixture
def start_nginx(tmp_path: Path) -> Iterator[NginxFactory]:
    """Start nginx (Debian's, default buffering) in front of edge ports; stopped after
    the test. `websocket=False` gives a site that does not pass upgrades on."""
    started: list[NginxProxy] = []

    def start(upstreams: list[int], *, websocket: bool = True) -> NginxProxy:
        proxy = NginxProxy(tmp_path / f"nginx-{len(started)}", upstreams, websocket=websocket)
        proxy.start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in reversed(started):
        proxy.stop()
