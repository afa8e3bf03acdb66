"""A publisher process per test module on the session's Redis and Kafka."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from roomcast_harness.services import ServiceProcess
from tests.conftest import Infra

MAX_PAYLOAD = 2048
MAX_BATCH = 20


@pytest.fixture(scope="module")
def module_topic() -> str:
    return f"roomcast.test.pub.{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def publisher(
    infra: Infra, module_topic: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """Small limits so 413 and batch caps are cheap to reach."""
    env = infra.env(
        module_topic,
        ROOMCAST_PUBLISHER__MAX_PAYLOAD_BYTES=str(MAX_PAYLOAD),
        ROOMCAST_PUBLISHER__MAX_BATCH=str(MAX_BATCH),
        ROOMCAST_PUBLISHER__CORS_ORIGINS="https://app.example",
    )
    proc = ServiceProcess("publisher", env, tmp_path_factory.mktemp("publisher"))
    proc.start()
    yield proc
    proc.stop()
