"""Presence shared by two edges and read through the publisher's REST API."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

from roomcast_harness.services import ServiceProcess
from tests.conftest import Infra
from tests.integration.edge.conftest import connect, http_get, request, token
from tests.integration.presence.conftest import (
    Receiver,
    Stack,
    eventually,
    rest_presence,
    stack_env,
)


def _room() -> str:
    return f"room-{uuid.uuid4().hex[:10]}"


def _counts(presence: dict[str, Any]) -> tuple[int, int]:
    return presence["connections"], presence["users"]


async def test_presence_spans_edges_and_the_rest_api(stack: Stack) -> None:
    room = _room()
    edge_a, edge_b = stack.edges
    alice, _ = await connect(edge_a, token=token(subject="alice"), roomIds=room)
    bob, _ = await connect(edge_b, token=token(subject="bob"), roomIds=room)
    alice_again, _ = await connect(edge_b, token=token(subject="alice"), roomIds=room)
    try:

        async def from_alice() -> dict[str, Any]:
            reply = await request(alice, "presence", {"room": room})
            assert reply["status"] == "ok", reply
            presence = reply["presence"]
            assert isinstance(presence, dict)
            return presence

        seen = await from_alice()
        deadline = time.monotonic() + 10
        while _counts(seen) != (3, 2) and time.monotonic() < deadline:
            seen = await from_alice()
        assert seen["room"] == room
        assert _counts(seen) == (3, 2)
        members = {(m["user_id"], m["connection_id"]) for m in seen["members"]}
        assert {u for u, _ in members} == {"alice", "bob"}
        assert len(members) == 3
        assert all(m["device_id"] == "device-1" and m["joined_at"] > 0 for m in seen["members"])

        rest = rest_presence(stack.publisher, room)
        assert _counts(rest) == (3, 2)
        assert sorted(m["connection_id"] for m in rest["members"]) == sorted(c for _, c in members)

        # A leave on one edge and a close on the other are seen everywhere.
        assert (await request(bob, "leave", {"room": room}))["status"] == "ok"
        await alice_again.close()
        await eventually(lambda: _counts(rest_presence(stack.publisher, room)) == (1, 1))
        reply = await request(bob, "presence", {"room": room}, request_id="not-in")
        assert reply["status"] == "fail"
        assert "not in room" in reply["error_message"]
    finally:
        for ws in (alice, bob, alice_again):
            await ws.close()
    await eventually(lambda: _counts(rest_presence(stack.publisher, room)) == (0, 0))


async def test_presence_caps_members_but_counts_them_all(
    infra: Infra, topic: str, tmp_path: Path, receiver: Receiver
) -> None:
    room = _room()
    env = stack_env(infra, topic, f"roomcast:test:outbox:{uuid.uuid4().hex[:8]}", receiver)
    edge = ServiceProcess(
        "edge", {**env, "ROOMCAST_EDGE__PRESENCE_MAX_MEMBERS": "2"}, tmp_path, name="edge"
    )
    edge.start()
    clients = []
    try:
        for n in range(5):
            ws, _ = await connect(edge, token=token(subject=f"u{n % 3}"), roomIds=room)
            clients.append(ws)
        reply = await request(clients[0], "presence", {"room": room})
        assert reply["status"] == "ok"
        presence = reply["presence"]
        assert _counts(presence) == (5, 3)
        assert len(presence["members"]) == 2
    finally:
        for ws in clients:
            await ws.close()
        edge.stop()


async def test_bad_presence_requests_fail(stack: Stack) -> None:
    room = _room()
    ws, _ = await connect(stack.edges[0], token=token(), roomIds=room)
    try:
        for params in ({}, {"room": ""}, {"room": "x" * 300}, {"room": _room()}):
            reply = await request(ws, "presence", params)
            assert reply["status"] == "fail", (params, reply)
            assert reply["error_message"]
        assert (await request(ws, "presence", {"room": room}))["status"] == "ok"
    finally:
        await ws.close()
    status, _ = http_get(f"{stack.publisher.url}/v1/rooms/{'x' * 300}/presence")
    assert status == 400
    status, body = http_get(f"{stack.publisher.url}/openapi.json")
    assert status == 200
    path = json.loads(body)["paths"]["/v1/rooms/{room}/presence"]
    assert set(path["get"]["responses"]) >= {"200", "400", "401", "503"}


async def test_members_of_a_killed_edge_expire_within_the_ttl(
    stack: Stack, tmp_path: Path, receiver: Receiver
) -> None:
    shared, only_doomed = _room(), _room()
    doomed = ServiceProcess("edge", stack.env, tmp_path, name="doomed")
    doomed.start()
    survivor, _ = await connect(stack.edges[0], token=token(subject="stays"), roomIds=shared)
    victims = [
        (
            await connect(
                doomed, token=token(subject=f"gone-{n}"), roomIds=f"{shared},{only_doomed}"
            )
        )[0]
        for n in range(3)
    ]
    try:
        await eventually(lambda: _counts(rest_presence(stack.publisher, shared)) == (4, 4))
        await eventually(lambda: _counts(rest_presence(stack.publisher, only_doomed)) == (3, 3))
        killed_at = time.monotonic()
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.process.wait()
        await eventually(lambda: _counts(rest_presence(stack.publisher, shared)) == (1, 1))
        gone_after = time.monotonic() - killed_at
        ttl = float(stack.env["ROOMCAST_EDGE__PRESENCE_TTL"])
        # Within the TTL, with a small allowance for polling and a loaded machine.
        assert gone_after <= ttl + 3.0, gone_after
        assert _counts(rest_presence(stack.publisher, only_doomed)) == (0, 0)
        reply = await request(survivor, "presence", {"room": shared})
        assert [m["user_id"] for m in reply["presence"]["members"]] == ["stays"]

        # The leaves the dead edge owed arrive as webhooks too.
        def owed() -> bool:
            names = [(e["name"], e.get("user_id")) for e in receiver.events(only_doomed)]
            return ("room_vacated", None) in names and all(
                ("member_removed", f"gone-{n}") in names for n in range(3)
            )

        await eventually(owed)
        removed = [e for e in receiver.events(shared) if e["name"] == "member_removed"]
        assert sorted(e["user_id"] for e in removed) == ["gone-0", "gone-1", "gone-2"]
        assert ("room_vacated", None) not in [(e["name"], None) for e in receiver.events(shared)]
    finally:
        await survivor.close()
        for ws in victims:
            await ws.close()
        doomed.stop()


def test_the_rest_api_takes_the_publishing_keys(stack: Stack, tmp_path: Path) -> None:
    keyed = ServiceProcess(
        "publisher", {**stack.env, "ROOMCAST_PUBLISHER__API_KEYS": "k1,k2"}, tmp_path, name="pub"
    )
    keyed.start()
    try:
        url = f"{keyed.url}/v1/rooms/{_room()}/presence"
        assert http_get(url)[0] == 401
        assert http_get(url, {"Authorization": "Bearer nope"})[0] == 401
        status, body = http_get(url, {"Authorization": "Bearer k2"})
        assert status == 200
        assert _counts(json.loads(body)["presence"]) == (0, 0)
    finally:
        keyed.stop()
