"""The operator console's API against a real publisher, two edges, Redis and Kafka."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from typing import Any

import aiohttp
import pytest
import websockets

from roomcast_client import RoomcastClient
from tests.integration.console.conftest import (
    ADMIN,
    PUBLISHING,
    WAIT,
    ConsoleStack,
    TailEvent,
    admin_get,
    edge_id_of,
    open_tail,
    until,
)
from tests.integration.edge.conftest import connect, metric, recv_json, request, token

FIGURES = {
    "edge_id",
    "connections",
    "rooms",
    "subscriptions",
    "messages_in_per_s",
    "deliveries_per_s",
    "p99_ms",
    "seen_at",
}


async def publish(
    session: aiohttp.ClientSession, stack: ConsoleStack, **message: Any
) -> dict[str, Any]:
    async with session.post(
        stack.publisher.url + "/v1/messages", json=message, headers=PUBLISHING
    ) as response:
        body = await response.json()
        assert response.status == 202, body
        return dict(body)


async def drain(ws: Any) -> None:
    """Read until the connection closes (ConnectionClosed says how)."""
    while True:
        await recv_json(ws)


async def test_edges_report_what_their_metrics_say(console_stack: ConsoleStack) -> None:
    stack = console_stack
    one, two = stack.edges
    ids = [await edge_id_of(one), await edge_id_of(two)]
    room = f"fig-{uuid.uuid4().hex[:6]}"
    topic = f"fig-{uuid.uuid4().hex[:6]}"
    a1, _ = await connect(one, token=token(), roomIds=f"{room},{room}-b")
    a2, _ = await connect(one, token=token(), roomIds=room, topics=f"{topic}:*")
    b1, _ = await connect(two, token=token(), roomIds=room)
    try:
        async with aiohttp.ClientSession() as session:
            for i in range(5):
                await publish(session, stack, room=room, payload=i)

            def figures_of(proc: Any) -> dict[str, float]:
                return {
                    "connections": metric(proc, "roomcast_edge_connections"),
                    "rooms": metric(proc, "roomcast_edge_rooms"),
                    "subscriptions": metric(proc, "roomcast_edge_subscriptions"),
                }

            async def reported() -> dict[str, dict[str, Any]]:
                status, body = await admin_get(session, stack.publisher.url + "/v1/admin/edges")
                assert status == 200, body
                return {e["edge_id"]: e for e in body["edges"] if e["edge_id"] in ids}

            def matches(edges: dict[str, dict[str, Any]]) -> bool:
                return all(
                    edge_id in edges
                    and all(edges[edge_id][k] == v for k, v in figures_of(proc).items())
                    for edge_id, proc in zip(ids, (one, two), strict=True)
                )

            edges = await until(reported, matches, "the edges' reports match their /metrics")
            for edge in edges.values():
                assert set(edge) == FIGURES
            assert edges[ids[0]]["connections"] == 2
            assert edges[ids[0]]["rooms"] == 2
            assert edges[ids[0]]["subscriptions"] == 1
            assert edges[ids[1]]["connections"] == 1

            # The rates come from the counters /metrics shows: the history keeps both.
            async def history() -> dict[str, Any]:
                url = stack.publisher.url + f"/v1/admin/edges/history?edge_id={ids[0]}"
                status, body = await admin_get(session, url)
                assert status == 200, body
                return dict(body)

            messages_in = metric(one, "roomcast_edge_messages_in_total")
            assert messages_in >= 5

            def counted(body: dict[str, Any]) -> bool:
                column = body["columns"].index("messages_in_total")
                points = body["edges"][0]["points"] if body["edges"] else []
                return bool(points) and points[-1][column] >= messages_in

            body = await until(history, counted, "the history reaches the edge's counter")
            columns = body["columns"]
            points = body["edges"][0]["points"]
            total_col, rate_col = (
                columns.index("messages_in_total"),
                columns.index("messages_in_per_s"),
            )
            seen = columns.index("seen_at")
            # Some report saw the messages arrive, at the rate its counters say.
            rises = [(p, q) for p, q in itertools.pairwise(points) if q[total_col] > p[total_col]]
            assert rises, points
            for p, q in rises:
                elapsed = (q[seen] - p[seen]) / 1000
                expected = (q[total_col] - p[total_col]) / elapsed
                assert q[rate_col] == pytest.approx(expected, rel=0.25), (p, q)
            assert body["totals"], body
    finally:
        for ws in (a1, a2, b1):
            await ws.close()


async def test_the_tail_shows_a_published_message_within_a_second(
    console_stack: ConsoleStack,
) -> None:
    stack = console_stack
    room = f"tail-{uuid.uuid4().hex[:6]}"
    async with aiohttp.ClientSession() as session:
        url = stack.publisher.url + f"/v1/admin/tail?room={room}"
        async with open_tail(session, url) as (response, events):
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/event-stream"
            ready = await events.next()
            assert ready.event == "ready", ready
            big = "x" * 5000
            receipt = await publish(session, stack, room=room, type="event", payload={"big": big})
            published = asyncio.get_running_loop().time()
            event = await events.next()
            assert event.data["meta"]["message_id"] == receipt["message_id"]
            assert event.data["meta"]["position"] == receipt["position"]
            assert event.data["room"] == room
            assert event.at - published < 1.0
            # The payload is cut to 2 KB, and says so.
            assert isinstance(event.data["payload"], str)
            assert len(event.data["payload"].encode()) <= 2048
            assert event.data["payload_truncated"] is True


async def test_the_tail_keeps_to_its_filters(console_stack: ConsoleStack) -> None:
    stack = console_stack
    tag = uuid.uuid4().hex[:6]
    async with aiohttp.ClientSession() as session:
        url = stack.publisher.url + f"/v1/admin/tail?topic=t-{tag}&type=quote"
        async with open_tail(session, url) as (_, events):
            assert (await events.next()).event == "ready"
            await publish(session, stack, topic=f"t-{tag}", type="trade", payload="wrong type")
            await publish(session, stack, topic=f"other-{tag}", type="quote", payload="wrong")
            await publish(session, stack, room=f"r-{tag}", type="quote", payload="no topic")
            wanted = await publish(session, stack, topic=f"t-{tag}", type="quote", payload="yes")
            event = await events.next()
            assert event.data["meta"]["message_id"] == wanted["message_id"]
            assert event.data["payload"] == "yes"
            assert "skipped" not in event.data


async def test_the_tail_samples_to_its_rate_and_counts_what_it_skipped(
    console_stack: ConsoleStack,
) -> None:
    stack = console_stack
    room = f"rate-{uuid.uuid4().hex[:6]}"
    rate = 5
    async with aiohttp.ClientSession() as session:
        url = stack.publisher.url + f"/v1/admin/tail?room={room}&rate={rate}"
        async with open_tail(session, url) as (_, events):
            assert (await events.next()).event == "ready"
            batch = [{"room": room, "payload": i} for i in range(60)]
            async with session.post(
                stack.publisher.url + "/v1/messages/batch",
                json={"messages": batch},
                headers=PUBLISHING,
            ) as answer:
                assert answer.status == 202, await answer.text()
            published = len(batch)
            seen: list[TailEvent] = []
            loop = asyncio.get_running_loop()
            deadline = loop.time() + WAIT
            # Every message is either shown or counted in a later event's `skipped`; one
            # more message now and then carries the count of the last skipped ones.
            while sum(1 + e.data.get("skipped", 0) for e in seen) < published:
                assert loop.time() < deadline, (published, [e.data for e in seen])
                try:
                    seen.append(await events.next(0.5))
                except TimeoutError:
                    await publish(session, stack, room=room, payload="more")
                    published += 1
            assert sum(1 + e.data.get("skipped", 0) for e in seen) == published
            assert any(e.data.get("skipped", 0) > 0 for e in seen)
            # Never more than a burst of `rate` plus `rate` per second.
            times = [e.at for e in seen]
            for i, start in enumerate(times):
                within = [t for t in times[i:] if t - start <= 1.0]
                assert len(within) <= 2 * rate, times
            assert len(seen) < published / 2


async def test_close_reaches_a_connection_on_the_other_edge(console_stack: ConsoleStack) -> None:
    stack = console_stack
    one, two = stack.edges
    user = f"user-{uuid.uuid4().hex[:6]}"
    room = f"close-{uuid.uuid4().hex[:6]}"
    here, hello_here = await connect(one, token=token(subject=user), roomIds=room)
    there, hello_there = await connect(two, token=token(subject=user))
    try:
        reply = await request(there, "subscribe", {"topic": "orders", "type": "*"})
        assert reply["status"] == "ok", reply
        async with aiohttp.ClientSession() as session:
            url = stack.publisher.url + f"/v1/admin/users/{user}/connections"

            async def listed() -> dict[str, dict[str, Any]]:
                status, body = await admin_get(session, url)
                assert status == 200, body
                return {c["connection_id"]: c for c in body["connections"]}

            both = {hello_here["connection_id"], hello_there["connection_id"]}
            found = await until(listed, lambda c: set(c) == both, "both connections listed")
            far = found[hello_there["connection_id"]]
            assert far["edge_id"] == await edge_id_of(two)
            assert far["device_id"] == "device-1"
            assert far["rooms"] == []
            assert far["subscriptions"] == ["orders:*"]
            assert isinstance(far["connected_at"], int)
            assert found[hello_here["connection_id"]]["rooms"] == [room]

            close_url = (
                stack.publisher.url + f"/v1/admin/connections/{hello_there['connection_id']}/close"
            )
            async with session.post(close_url, headers=ADMIN) as response:
                assert response.status == 200, await response.text()
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await drain(there)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4003
            assert closed.value.rcvd.reason == "closed by operator"
            left = await until(
                listed, lambda c: set(c) == {hello_here["connection_id"]}, "one connection left"
            )
            assert hello_there["connection_id"] not in left

            # Closed already, or never there: 404.
            async with session.post(close_url, headers=ADMIN) as response:
                assert response.status == 404
            async with session.post(
                stack.publisher.url + "/v1/admin/connections/no-such-id/close", headers=ADMIN
            ) as response:
                assert response.status == 404
    finally:
        await here.close()
        await there.close()


async def test_history_and_rooms_and_presence_look_ups(console_stack: ConsoleStack) -> None:
    stack = console_stack
    tag = uuid.uuid4().hex[:8]
    room = f"look-{tag}"
    ws, hello = await connect(stack.edges[1], token=token(subject="looker"), roomIds=room)
    try:
        async with aiohttp.ClientSession() as session:
            receipt = await publish(session, stack, room=room, type="event", payload={"n": 1})
            await publish(session, stack, room=f"elsewhere-{tag}", payload={"n": 2})
            status, body = await admin_get(
                session, stack.publisher.url + f"/v1/admin/history?room={room}"
            )
            assert status == 200, body
            assert [m["meta"]["message_id"] for m in body["messages"]] == [receipt["message_id"]]
            assert body["messages"][0]["payload"] == {"n": 1}

            async def rooms() -> list[dict[str, Any]]:
                url = stack.publisher.url + f"/v1/admin/rooms?q={tag}"
                status, body = await admin_get(session, url)
                assert status == 200, body
                return list(body["rooms"])

            listed = await until(rooms, lambda r: bool(r), "the room is found by a search")
            assert listed == [{"room": room, "connections": 1, "users": 1}]

            status, body = await admin_get(
                session, stack.publisher.url + f"/v1/admin/rooms/{room}/presence"
            )
            assert status == 200, body
            assert body["presence"]["connections"] == 1
            assert body["presence"]["members"][0]["connection_id"] == hello["connection_id"]
    finally:
        await ws.close()


async def test_the_admin_publish_takes_an_admin_key_not_a_publishing_key(
    console_stack: ConsoleStack,
) -> None:
    url = console_stack.publisher.url + "/v1/admin/messages"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"payload": 1}, headers=ADMIN) as response:
            assert response.status == 202, await response.text()
            assert (await response.json())["position"]
        async with session.post(url, json={"payload": 1}, headers=PUBLISHING) as response:
            assert response.status == 401
        batch = {"messages": [{"payload": 1}, {"payload": 2}]}
        async with session.post(url + "/batch", json=batch, headers=ADMIN) as response:
            assert response.status == 202, await response.text()
            assert len((await response.json())["results"]) == 2
        async with session.post(url, data=b"{", headers=ADMIN) as response:
            assert response.status == 400


async def test_a_tail_holds_the_bus_only_while_open_and_tails_are_bounded(
    console_stack: ConsoleStack,
) -> None:
    publisher = console_stack.publisher
    readers = "roomcast_publisher_admin_tail_readers"

    async def reading() -> float:
        return metric(publisher, readers)

    # The tails of earlier tests are let go within a second or so of their close.
    await until(reading, lambda v: v == 0, "no reader while no tail is open")
    url = publisher.url + "/v1/admin/tail"
    async with aiohttp.ClientSession() as session:
        responses = []
        try:
            for _ in range(8):
                response = await session.get(url, headers=ADMIN)
                assert response.status == 200
                responses.append(response)
            assert metric(publisher, readers) == 1
            assert metric(publisher, "roomcast_publisher_admin_tails") == 8
            async with session.get(url, headers=ADMIN) as refused:
                assert refused.status == 429
                assert (await refused.json())["error"]["code"] == "too_many_tails"
        finally:
            for response in responses:
                response.close()
        await until(reading, lambda v: v == 0, "the reader stops with the last tail")


@pytest.mark.parametrize(
    "query", ["rate=0", "rate=201", "rate=x", "room=" + "r" * 200, "topic=%01"]
)
async def test_bad_tail_queries_are_400(console_stack: ConsoleStack, query: str) -> None:
    url = console_stack.publisher.url + f"/v1/admin/tail?{query}"
    async with aiohttp.ClientSession() as session:
        status, body = await admin_get(session, url)
        assert status == 400, body
        assert body["error"]["code"] == "invalid_request"


LONG = "x" * 300


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/admin/edges/history?since=abc"),
        ("GET", "/v1/admin/edges/history?edge_id=" + ",".join(f"e{i}" for i in range(21))),
        ("GET", "/v1/admin/rooms?limit=0"),
        ("GET", "/v1/admin/rooms?limit=100000"),
        ("GET", "/v1/admin/rooms?cursor=-1"),
        ("GET", "/v1/admin/rooms?cursor=99999999999999999999"),
        ("GET", "/v1/admin/rooms?q=" + LONG),
        ("GET", "/v1/admin/rooms/%20/presence"),
        ("GET", f"/v1/admin/rooms/{LONG}/presence"),
        ("GET", "/v1/admin/history?limit=100000"),
        ("GET", "/v1/admin/history?room=%7f"),
        ("GET", f"/v1/admin/users/{LONG}/connections"),
        ("POST", f"/v1/admin/connections/{LONG}-{LONG}/close"),
        ("POST", "/v1/admin/connections/-/close"),
        ("POST", "/v1/admin/messages"),
        ("POST", "/v1/admin/messages/batch"),
    ],
)
async def test_bad_admin_input_is_a_4xx(
    console_stack: ConsoleStack, method: str, path: str
) -> None:
    url = console_stack.publisher.url + path
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, headers=ADMIN) as response,
    ):
        assert 400 <= response.status < 500, (response.status, await response.text())
        assert (await response.json())["error"]["code"]


async def test_the_python_client_stays_closed_after_an_operator_close(
    console_stack: ConsoleStack,
) -> None:
    edge = console_stack.edges[1]
    user = f"py-{uuid.uuid4().hex[:6]}"
    url = edge.url.replace("http://", "ws://") + "/ws"
    async with aiohttp.ClientSession() as session:
        client = RoomcastClient(url, token(subject=user), session=session, backoff_min=0.05)
        await client.connect()
        try:
            connection_id = client.last_connected["connection_id"]
            close_url = console_stack.publisher.url + f"/v1/admin/connections/{connection_id}/close"
            async with session.post(close_url, headers=ADMIN) as response:
                assert response.status == 200, await response.text()

            async def terminal() -> str | None:
                return client.terminal

            # `terminal` is set as the client's loop ends: it never reconnects after it.
            stopped = await until(terminal, lambda t: t is not None, "the client stopped")
            assert stopped == "closed with 4003"
            assert client.close_codes == [4003]
            assert client.connects == 1
        finally:
            await client.close()
