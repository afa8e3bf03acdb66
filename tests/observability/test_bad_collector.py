"""A collector that is missing or never answers must not block or crash a service."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import aiohttp
import pytest

from roomcast_harness.procs import free_port
from tests.conftest import Infra, ServiceFactory


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A port that accepts TCP connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock.getsockname()[1]


@pytest.mark.parametrize("kind", ["closed", "blackhole"])
async def test_publisher_works_and_stops_with_a_dead_collector(
    kind: str, blackhole: int, infra: Infra, topic: str, start_service: ServiceFactory
) -> None:
    port = free_port() if kind == "closed" else blackhole
    env = {
        **infra.env(topic),
        "OTEL_SDK_DISABLED": "false",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    publisher = start_service("publisher", env)
    async with aiohttp.ClientSession() as session:
        for i in range(20):
            async with session.post(
                f"{publisher.url}/v1/messages", json={"topic": "t", "payload": i}
            ) as response:
                assert response.status == 202
    # SIGTERM; ServiceProcess.stop kills (exit -9) only after 20 s, so 0 means a clean,
    # bounded exit even though spans could not be delivered.
    assert publisher.stop(timeout=20) == 0
