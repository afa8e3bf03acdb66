"""The tail and the look-back on the Redis Streams bus: XREAD from the end, XREVRANGE back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import aiohttp
import pytest

from roomcast_harness.services import ServiceProcess
from tests.conftest import Infra, ServiceFactory, infra_on
from tests.integration.console.conftest import ADMIN, ADMIN_KEY, admin_get, open_tail


@pytest.fixture(scope="module", params=["redis"])
def infra(request: pytest.FixtureRequest) -> Infra:
    return infra_on(request)


@pytest.fixture(scope="module")
def publisher(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    topic = f"roomcast.console.{uuid.uuid4().hex[:10]}"
    env = infra.env(topic, ROOMCAST_PUBLISHER__ADMIN_KEYS=ADMIN_KEY)
    with ServiceProcess("publisher", env, tmp_path_factory.mktemp("redis-bus")) as proc:
        yield proc


async def test_the_tail_and_the_look_back_read_redis_streams(publisher: ServiceProcess) -> None:
    room = f"redis-{uuid.uuid4().hex[:6]}"
    async with aiohttp.ClientSession() as session:
        # Published before the tail opens: the tail starts at the end, without it.
        async with session.post(
            publisher.url + "/v1/admin/messages",
            json={"room": room, "payload": "old"},
            headers=ADMIN,
        ) as response:
            assert response.status == 202
            old = await response.json()
        url = publisher.url + f"/v1/admin/tail?room={room}"
        async with open_tail(session, url) as (response, events):
            assert response.status == 200
            assert (await events.next()).event == "ready"
            async with session.post(
                publisher.url + "/v1/admin/messages",
                json={"room": room, "type": "t", "payload": {"new": True}},
                headers=ADMIN,
            ) as answer:
                assert answer.status == 202
                new = await answer.json()
            event = await events.next()
            assert event.data["meta"]["message_id"] == new["message_id"]
            assert event.data["meta"]["position"] == new["position"]
            assert event.data["payload"] == {"new": True}
        status, body = await admin_get(session, publisher.url + f"/v1/admin/history?room={room}")
        assert status == 200, body
        assert [m["meta"]["message_id"] for m in body["messages"]] == [
            old["message_id"],
            new["message_id"],
        ]


async def test_an_open_tail_never_holds_up_a_stopping_publisher(
    infra: Infra, start_service: ServiceFactory
) -> None:
    env = infra.env(
        f"roomcast.console.{uuid.uuid4().hex[:10]}", ROOMCAST_PUBLISHER__ADMIN_KEYS=ADMIN_KEY
    )
    proc = start_service("publisher", env, name="stopping-publisher")
    async with (
        aiohttp.ClientSession() as session,
        open_tail(session, proc.url + "/v1/admin/tail") as (_, events),
    ):
        assert (await events.next()).event == "ready"
        loop = asyncio.get_running_loop()
        started = loop.time()
        code = await asyncio.to_thread(proc.stop)
        assert loop.time() - started < 10, "the tail held the publisher up"
        assert code == 0
        end = await events.next()
        assert end.event == "end"
