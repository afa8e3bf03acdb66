"""Two edges, a publisher and a real webhook receiver, for presence and webhook tests.

The receiver is an aiohttp app on its own thread and loop, so module-wide fixtures
and the tests' own loops can share it; what it answers is set per test.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from roomcast_harness.procs import free_port
from roomcast_harness.services import ServiceProcess
from tests.conftest import Infra
from tests.integration.edge.conftest import WAIT, http_get
from tests.integration.edge.conftest import publisher as publisher  # the fixture, shared

WEBHOOK_SECRET = "webhook-secret-for-tests"


@dataclass
class Delivery:
    body: bytes
    signature: str
    status: int  # what the receiver answered
    at: float  # time.monotonic() of arrival

    @property
    def json(self) -> dict[str, Any]:
        parsed = json.loads(self.body)
        assert isinstance(parsed, dict)
        return parsed

    def signed(self, secret: str = WEBHOOK_SECRET) -> bool:
        expected = hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(self.signature, f"sha256={expected}")


@dataclass
class Receiver:
    """Records every delivery; `answer` picks the status of each (default 200)."""

    port: int
    deliveries: list[Delivery] = field(default_factory=list)
    answer: Callable[[dict[str, Any]], int] = lambda _: 200
    # Seconds the receiver waits before answering (a hanging receiver).
    hang: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def events(self, room: str, *, acknowledged: bool = True) -> list[dict[str, Any]]:
        """Events about `room` of the deliveries (answered 2xx only, by default)."""
        with self.lock:
            seen = list(self.deliveries)
        return [
            event
            for d in seen
            if not acknowledged or 200 <= d.status < 300
            for event in d.json["events"]
            if event["room"] == room
        ]

    def for_room(self, room: str) -> list[Delivery]:
        with self.lock:
            seen = list(self.deliveries)
        return [d for d in seen if any(e["room"] == room for e in d.json["events"])]


def _serve(receiver: Receiver, started: threading.Event, stop: threading.Event) -> None:
    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        if receiver.hang:
            await asyncio.sleep(receiver.hang)
        status = receiver.answer(json.loads(body))
        with receiver.lock:
            receiver.deliveries.append(
                Delivery(
                    body, request.headers.get("X-Roomcast-Signature", ""), status, time.monotonic()
                )
            )
        return web.Response(status=status, text="ok" if status < 300 else "no")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", receiver.port).start()
        started.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await runner.cleanup()

    asyncio.run(main())


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    hook = Receiver(free_port())
    started, stop = threading.Event(), threading.Event()
    thread = threading.Thread(target=_serve, args=(hook, started, stop), daemon=True)
    thread.start()
    assert started.wait(WAIT)
    yield hook
    stop.set()
    thread.join(WAIT)


def stack_env(
    infra: Infra, topic: str, stream: str, receiver: Receiver, **extra: str
) -> dict[str, str]:
    return infra.env(
        topic,
        ROOMCAST_EDGE__PRESENCE_TTL="4",
        ROOMCAST_EDGE__PRESENCE_EVENTS="true",
        ROOMCAST_WEBHOOKS__URLS=receiver.url,
        ROOMCAST_WEBHOOKS__SECRET=WEBHOOK_SECRET,
        ROOMCAST_WEBHOOKS__STREAM=stream,
        ROOMCAST_WEBHOOKS__TIMEOUT="2",
        ROOMCAST_WEBHOOKS__RETRY_BASE="0.5",
        ROOMCAST_WEBHOOKS__RETRY_MAX="2",
        **extra,
    )


@dataclass
class Stack:
    edges: list[ServiceProcess]
    publisher: ServiceProcess
    env: dict[str, str]


@pytest.fixture(scope="module")
def stack(
    infra: Infra, tmp_path_factory: pytest.TempPathFactory, receiver: Receiver
) -> Iterator[Stack]:
    """Two edges and a publisher sharing a topic, a webhook outbox and the receiver."""
    topic = f"roomcast.test.{uuid.uuid4().hex[:12]}"
    env = stack_env(infra, topic, f"roomcast:test:outbox:{uuid.uuid4().hex[:8]}", receiver)
    workdir = Path(tmp_path_factory.mktemp("presence"))
    procs = [
        ServiceProcess("edge", env, workdir, name="edge-a"),
        ServiceProcess("edge", env, workdir, name="edge-b"),
        ServiceProcess("publisher", env, workdir, name="publisher"),
    ]
    try:
        for proc in procs:
            proc.start()
        yield Stack(procs[:2], procs[2], env)
    finally:
        for proc in procs:
            proc.stop()


def rest_presence(publisher: ServiceProcess, room: str) -> dict[str, Any]:
    status, body = http_get(f"{publisher.url}/v1/rooms/{room}/presence")
    assert status == 200, body
    presence = json.loads(body)["presence"]
    assert isinstance(presence, dict)
    return presence


async def eventually(check: Callable[[], Any], timeout: float = WAIT) -> Any:
    """Poll `check` until it returns something truthy (then return it) or fail."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"not reached within {timeout} s: last {result!r}")
        await asyncio.sleep(0.05)
