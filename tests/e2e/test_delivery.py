"""token → connect → subscribe → publish → receive, through every real component."""

from __future__ import annotations

import uuid

import aiohttp
import pytest

from roomcast_client import Push, RoomcastClient, fetch_token, publish
from tests.conftest import BUSES, Infra, infra_on
from tests.e2e.conftest import Stack, assert_no_message


@pytest.fixture(scope="module", params=BUSES)
def infra(request: pytest.FixtureRequest) -> Infra:
    """Every test here runs on Kafka and on Redis Streams."""
    return infra_on(request)


QUIET = 1.5  # seconds a client must stay silent to show it was not addressed


async def _client(
    session: aiohttp.ClientSession,
    stack: Stack,
    *,
    edge: int = 0,
    rooms: tuple[str, ...] = (),
    subscriptions: tuple[tuple[str, str], ...] = (),
) -> RoomcastClient:
    token = await fetch_token(session, stack.auth.url, device_id=f"dev-{uuid.uuid4().hex[:8]}")
    client = RoomcastClient(
        stack.ws_url(edge), token, rooms=rooms, subscriptions=subscriptions, session=session
    )
    await client.connect()
    return client


async def _quiet(client: RoomcastClient) -> None:
    await assert_no_message(client, QUIET)


def _payloads(pushes: list[Push]) -> list[object]:
    return [p.payload for p in pushes]


async def test_each_delivery_rule_end_to_end(stack: Stack) -> None:
    room = f"r-{uuid.uuid4().hex[:6]}"
    topic = f"t-{uuid.uuid4().hex[:6]}"
    async with aiohttp.ClientSession() as session:
        in_room = await _client(session, stack, rooms=(room,))
        on_topic = await _client(session, stack, subscriptions=((topic, "event"),))
        any_type = await _client(session, stack, subscriptions=((topic, "*"),))
        both = await _client(session, stack, rooms=(room,), subscriptions=((topic, "*"),))
        nobody = await _client(session, stack, edge=1)
        clients = [in_room, on_topic, any_type, both, nobody]
        try:
            # room only: the two clients in the room
            await publish(session, stack.publisher.url, "to-room", room=room)
            for c in (in_room, both):
                assert (await c.next_message(timeout=20)).payload == "to-room"
            # topic + type: exact type and "*" subscribers, each once (both matches twice)
            await publish(session, stack.publisher.url, "to-topic", topic=topic, type_="event")
            for c in (on_topic, any_type, both):
                push = await c.next_message(timeout=20)
                assert (push.payload, push.topic, push.type) == ("to-topic", topic, "event")
            # another type of the topic: only "*" subscribers
            await publish(session, stack.publisher.url, "other-type", topic=topic, type_="tick")
            for c in (any_type, both):
                assert (await c.next_message(timeout=20)).payload == "other-type"
            # room and topic: only the client matching both
            await publish(
                session,
                stack.publisher.url,
                "room-and-topic",
                topic=topic,
                type_="event",
                room=room,
            )
            push = await both.next_message(timeout=20)
            assert (push.payload, push.room) == ("room-and-topic", room)
            for c in (in_room, on_topic, any_type, both, nobody):
                await _quiet(c)
            # broadcast: everyone, on both edges, exactly once
            await publish(session, stack.publisher.url, {"all": True})
            for c in clients:
                push = await c.next_message(timeout=20)
                assert push.payload == {"all": True}
                assert push.topic is None
            for c in clients:
                await _quiet(c)
        finally:
            for c in clients:
                await c.close()


async def test_order_per_room_is_kept(stack: Stack) -> None:
    room = f"r-{uuid.uuid4().hex[:6]}"
    async with aiohttp.ClientSession() as session:
        listener = await _client(session, stack, rooms=(room,))
        try:
            for i in range(30):
                await publish(session, stack.publisher.url, i, room=room)
            got = [(await listener.next_message(timeout=20)).payload for _ in range(30)]
            assert got == list(range(30))
        finally:
            await listener.close()


async def test_two_edges_both_deliver(stack: Stack) -> None:
    topic = f"t-{uuid.uuid4().hex[:6]}"
    async with aiohttp.ClientSession() as session:
        first = await _client(session, stack, edge=0, subscriptions=((topic, "*"),))
        second = await _client(session, stack, edge=1, subscriptions=((topic, "*"),))
        try:
            answer = await publish(session, stack.publisher.url, "both", topic=topic, type_="x")
            for c in (first, second):
                push = await c.next_message(timeout=20)
                assert push.payload == "both"
                assert push.position == answer["position"]
                assert push.message_id == answer["message_id"]
        finally:
            await first.close()
            await second.close()


async def test_subscribe_and_join_at_runtime(stack: Stack) -> None:
    room = f"r-{uuid.uuid4().hex[:6]}"
    topic = f"t-{uuid.uuid4().hex[:6]}"
    async with aiohttp.ClientSession() as session:
        client = await _client(session, stack)
        try:
            assert (await client.subscribe(topic, "event"))["status"] == "ok"
            assert (await client.join(room))["status"] == "ok"
            await publish(session, stack.publisher.url, "sub", topic=topic, type_="event")
            assert (await client.next_message(timeout=20)).payload == "sub"
            await publish(session, stack.publisher.url, "joined", room=room)
            assert (await client.next_message(timeout=20)).payload == "joined"
            await client.unsubscribe(topic, "event")
            await client.leave(room)
            await publish(session, stack.publisher.url, "gone", topic=topic, type_="event")
            await publish(session, stack.publisher.url, "gone", room=room)
            await _quiet(client)
            assert (await client.ping())["status"] == "ok"
        finally:
            await client.close()
