"""Join/leave pushes (PRESENCE_EVENTS): per user, not per connection, across edges."""

from __future__ import annotations

import uuid
from typing import Any

from websockets.asyncio.client import ClientConnection

from tests.integration.edge.conftest import connect, recv_json, request, token
from tests.integration.presence.conftest import Stack, eventually, rest_presence


async def _next_notice(ws: ClientConnection) -> dict[str, Any]:
    while True:
        body = await recv_json(ws)
        if body.get("action") == "presence" and "event" in body:
            return body


def _connections(stack: Stack, room: str) -> int:
    count = rest_presence(stack.publisher, room)["connections"]
    assert isinstance(count, int)
    return count


async def test_join_and_leave_are_pushed_once_per_user(stack: Stack) -> None:
    room = f"events-{uuid.uuid4().hex[:10]}"
    edge_a, edge_b = stack.edges
    watcher, _ = await connect(edge_a, token=token(subject="watcher"), roomIds=room)
    await eventually(lambda: _connections(stack, room) == 1)
    alice_b, hello = await connect(edge_b, token=token(subject="alice"), roomIds=room)
    joined = await _next_notice(watcher)
    assert joined["event"] == "join"
    assert joined["room"] == room
    assert joined["member"]["user_id"] == "alice"
    assert joined["member"]["connection_id"] == hello["connection_id"]
    assert isinstance(joined["timestamp"], int)

    # alice's second connection, on the other edge, is no new member: no push.
    alice_a, _ = await connect(edge_a, token=token(subject="alice"), roomIds=room)
    await eventually(lambda: _connections(stack, room) == 3)
    bob, _ = await connect(edge_b, token=token(subject="bob"), roomIds=room)
    assert (await _next_notice(watcher))["member"]["user_id"] == "bob"

    # One of alice's two connections leaving is no leave either.
    await alice_b.close()
    await eventually(lambda: _connections(stack, room) == 3)
    assert (await request(bob, "leave", {"room": room}))["status"] == "ok"
    left = await _next_notice(watcher)
    assert (left["event"], left["member"]["user_id"]) == ("leave", "bob")
    await alice_a.close()
    left = await _next_notice(watcher)
    assert (left["event"], left["member"]["user_id"]) == ("leave", "alice")
    await bob.close()
    await watcher.close()
