"""A whole roomcast stack (auth, publisher, edges) as real processes, shared per module."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from roomcast_client import RoomcastClient
from roomcast_harness.services import ServiceProcess
from tests.conftest import Infra


@dataclass
class Stack:
    infra: Infra
    topic: str
    workdir: Path
    env: dict[str, str]
    auth: ServiceProcess
    publisher: ServiceProcess
    edges: list[ServiceProcess] = field(default_factory=list)

    def ws_url(self, edge: int = 0) -> str:
        return self.edges[edge].url.replace("http://", "ws://") + "/ws"

    def start_edge(self, name: str, **extra: str) -> ServiceProcess:
        edge = ServiceProcess("edge", {**self.env, **extra}, self.workdir, name=name)
        edge.start(timeout=90)
        self.edges.append(edge)
        return edge

    def stop(self) -> None:
        for proc in [*self.edges, self.publisher, self.auth]:
            proc.stop()


def start_stack(infra: Infra, workdir: Path, edges: int = 1, **extra: str) -> Stack:
    topic = f"roomcast.e2e.{uuid.uuid4().hex[:10]}"
    env = infra.env(topic, **extra)
    auth = ServiceProcess("auth", env, workdir, name="auth")
    publisher = ServiceProcess("publisher", env, workdir, name="publisher")
    stack = Stack(infra, topic, workdir, env, auth, publisher)
    try:
        for proc in (auth, publisher):
            proc.launch()
        for i in range(edges):
            edge = ServiceProcess("edge", env, workdir, name=f"edge-{i + 1}")
            edge.launch()
            stack.edges.append(edge)
        for proc in (auth, publisher, *stack.edges):
            proc.wait_ready(timeout=90)
    except BaseException:
        stack.stop()
        raise
    return stack


@pytest.fixture(scope="module")
def stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = start_stack(infra, tmp_path_factory.mktemp("e2e"), edges=2)
    yield running
    running.stop()


async def assert_no_message(client: RoomcastClient, seconds: float = 1.5) -> None:
    """The client stays silent for a while: it was not addressed (or got no duplicate)."""
    try:
        got = await client.next_message(timeout=seconds)
    except TimeoutError:
        return
    pytest.fail(f"unexpected push {got}")
