"""Webhooks from presence transitions: once per transition across edges, signed,
retried with the same id, and delivered after the sender was killed mid-retry."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection

from roomcast_harness.services import ServiceProcess
from tests.conftest import Infra
from tests.integration.edge.conftest import (
    Publisher,
    connect,
    message,
    metric,
    recv_json,
    request,
    token,
)
from tests.integration.presence.conftest import (
    WEBHOOK_SECRET,
    Receiver,
    Stack,
    eventually,
    stack_env,
)


def _room() -> str:
    return f"hook-{uuid.uuid4().hex[:10]}"


def _names(events: list[dict[str, Any]]) -> Counter[tuple[str, str | None]]:
    return Counter((e["name"], e.get("user_id")) for e in events)


def _outbox_order(delivery_id: str) -> tuple[int, int]:
    # A delivery's id is its outbox entry's id ("<ms>-<seq>"): the order the
    # transitions were decided in, whatever order the deliveries arrive in.
    ms, seq = delivery_id.split("-")
    return int(ms), int(seq)


def _unique_events(receiver: Receiver, room: str) -> list[dict[str, Any]]:
    """Acknowledged events of `room` in the order they were decided, a redelivered
    batch counted once."""
    seen: dict[str, list[dict[str, Any]]] = {}
    for delivery in receiver.for_room(room):
        if 200 <= delivery.status < 300:
            body = delivery.json
            seen[body["id"]] = [e for e in body["events"] if e["room"] == room]
    return [event for key in sorted(seen, key=_outbox_order) for event in seen[key]]


async def test_each_transition_is_sent_once_whichever_edge_causes_it(
    stack: Stack, receiver: Receiver
) -> None:
    room = _room()
    edge_a, edge_b = stack.edges
    # The same user enters through both edges at once, then a second user.
    alice_a, alice_b = await asyncio.gather(
        connect(edge_a, token=token(subject="alice"), roomIds=room),
        connect(edge_b, token=token(subject="alice"), roomIds=room),
    )
    bob, _ = await connect(edge_b, token=token(subject="bob"), roomIds=room)
    await eventually(lambda: len(_unique_events(receiver, room)) >= 3)
    await alice_a[0].close()
    await bob.close()
    await alice_b[0].close()
    expected = Counter(
        {
            ("room_occupied", None): 1,
            ("member_added", "alice"): 1,
            ("member_added", "bob"): 1,
            ("member_removed", "alice"): 1,
            ("member_removed", "bob"): 1,
            ("room_vacated", None): 1,
        }
    )
    await eventually(lambda: _names(_unique_events(receiver, room)) == expected)
    events = _unique_events(receiver, room)
    names = [e["name"] for e in events]
    assert names[0] == "room_occupied"
    assert names[-1] == "room_vacated"
    for delivery in receiver.for_room(room):
        assert delivery.signed(), delivery
        assert not delivery.signed(WEBHOOK_SECRET + "x")
        body = delivery.json
        assert isinstance(body["id"], str)
        assert body["id"]
        assert isinstance(body["time_ms"], int)


async def test_a_failed_delivery_is_retried_with_the_same_id(
    stack: Stack, receiver: Receiver
) -> None:
    room = _room()
    failed: set[str] = set()

    def answer(body: dict[str, Any]) -> int:
        if any(e["room"] == room for e in body["events"]) and body["id"] not in failed:
            failed.add(body["id"])
            return 500
        return 200

    receiver.answer = answer
    try:
        ws, _ = await connect(stack.edges[0], token=token(subject="carol"), roomIds=room)
        await eventually(lambda: any(d.status == 200 for d in receiver.for_room(room)))
        await ws.close()
    finally:
        receiver.answer = lambda _: 200
    first = receiver.for_room(room)[0]
    assert first.status == 500
    again = [d for d in receiver.for_room(room) if d.json["id"] == first.json["id"]]
    assert [d.status for d in again][:2] == [500, 200]
    assert again[1].body == first.body  # the same delivery, byte for byte
    assert again[1].signed()
    assert _names(first.json["events"]) == Counter(
        {("room_occupied", None): 1, ("member_added", "carol"): 1}
    )


async def test_delivery_resumes_after_the_sender_is_killed_mid_retry(
    infra: Infra, topic: str, tmp_path: Path, receiver: Receiver
) -> None:
    room = _room()
    env = stack_env(infra, topic, f"roomcast:test:outbox:{uuid.uuid4().hex[:8]}", receiver)
    accept = False

    def answer(body: dict[str, Any]) -> int:
        mine = any(e["room"] == room for e in body["events"])
        return 200 if accept or not mine else 503

    receiver.answer = answer
    edge = ServiceProcess("edge", env, tmp_path, name="sender")
    try:
        edge.start()
        ws, _ = await connect(edge, token=token(subject="dave"), roomIds=room)
        # Refused at least twice: the entry is being retried when the edge dies.
        await eventually(lambda: len(receiver.for_room(room)) >= 2)
        first_id = receiver.for_room(room)[0].json["id"]
        os.kill(edge.pid, signal.SIGKILL)
        edge.process.wait()
        await ws.close()
        accept = True
        refused = len(receiver.for_room(room))
        await asyncio.sleep(1.0)
        assert len(receiver.for_room(room)) == refused  # nobody else is delivering
        edge.start()
        await eventually(
            lambda: any(
                d.status == 200 and d.json["id"] == first_id for d in receiver.for_room(room)
            )
        )
    finally:
        receiver.answer = lambda _: 200
        edge.stop()


async def _join_leave_seconds(ws: ClientConnection, rounds: int) -> float:
    """Seconds for `rounds` join + presence + leave requests (each a pair of transitions).

    The presence read makes the edge write the join at once: a join and a leave that
    reach the edge's batch together cancel out, and cause no transition at all.
    """
    started = time.perf_counter()
    for n in range(rounds):
        room = f"churn-{uuid.uuid4().hex[:8]}"
        assert (await request(ws, "join", {"room": room}, request_id=f"j{n}"))["status"] == "ok"
        seen = await request(ws, "presence", {"room": room}, request_id=f"p{n}")
        assert seen["presence"]["connections"] == 1, seen
        assert (await request(ws, "leave", {"room": room}, request_id=f"l{n}"))["status"] == "ok"
    return time.perf_counter() - started


async def test_a_hanging_receiver_delays_no_connection_and_no_push(
    stack: Stack, receiver: Receiver, publisher: Publisher
) -> None:
    edge = stack.edges[0]
    publisher.topic = stack.env["ROOMCAST_KAFKA__TOPIC"]
    room = _room()
    ws, _ = await connect(edge, token=token(subject="erin"), roomIds=room)
    baseline = await _join_leave_seconds(ws, 15)
    await asyncio.sleep(1.0)  # the request budget (REQUEST_RATE) fills up again

    def failed() -> float:
        name = 'roomcast_webhook_deliveries_total{result="failed"}'
        return sum(metric(e, name) for e in stack.edges)

    failed_before = failed()
    receiver.hang = 30.0  # far past the timeout: every post times out
    try:
        churn = await _join_leave_seconds(ws, 15)
        await eventually(lambda: failed() > failed_before)  # the posts did hang
        other, _ = await connect(edge, token=token(subject="frank"), roomIds=room)
        msg = message("while the receiver hangs", room=room)
        await publisher.send(msg)
        for client in (ws, other):
            while (body := await recv_json(client)).get("meta") is None:
                pass
            assert body["meta"]["message_id"] == msg.message_id
        await other.close()
    finally:
        receiver.hang = 0.0
    await ws.close()
    # Requests, connects and pushes go on at their pace (the ratio allows for noise).
    assert churn <= 3 * baseline + 0.5, (churn, baseline)
