"""The receiving side's bookkeeping of subscriptions, with a fake pub/sub connection:
a channel is confirmed by the answer to its own subscription, never by an older one."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from roomcast_edge.adapters.route_listener import RouteListener, _LinkLost
from roomcast_edge.domain.inbox import Inbox
from roomcast_edge.domain.ports import ArchiveReader
from roomcast_edge.domain.replay_index import BROADCAST
from roomcast_edge.metrics import EdgeMetrics
from tests.unit.edge.test_shared_inbox import FakeNode

ROOM = ("room", "a")


class FakePubSub:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def ssubscribe(self, name: str) -> None:
        self.sent.append(("sub", name))

    async def sunsubscribe(self, name: str) -> None:
        self.sent.append(("unsub", name))


class NoArchive:
    async def log_start(self, partitions: Any) -> dict[int, int]:
        return {}

    def known_log_start(self) -> dict[int, int] | None:
        return None

    async def offsets_at(self, timestamp_ms: int, partitions: Any) -> dict[int, int]:
        return {}

    def reader(self, purpose: str) -> AbstractAsyncContextManager[ArchiveReader]:
        raise AssertionError("no read expected")


def _listener() -> tuple[RouteListener, Inbox, FakePubSub]:
    node = FakeNode()
    inbox = Inbox(node, node.history.positions)
    metrics = EdgeMetrics(CollectorRegistry())
    listener = RouteListener(None, "p.", inbox, NoArchive(), metrics, linger=0.0)  # type: ignore[arg-type]
    return listener, inbox, FakePubSub()


def _confirmed(inbox: Inbox) -> bool:
    return inbox._channels[ROOM].confirmed


async def test_an_old_confirmation_does_not_confirm_a_new_subscription() -> None:
    listener, inbox, pubsub = _listener()
    await listener._send_pending(pubsub)  # nothing held but the broadcast yet
    listener.want(ROOM, True)
    await listener._send_pending(pubsub)
    listener._drop(ROOM)  # let go before its confirmation came
    await listener._send_pending(pubsub)
    listener.want(ROOM, True)
    listener._confirmed(b"p.r.a")  # the first subscription's answer, comes late
    await listener._send_pending(pubsub)
    assert pubsub.sent == [("sub", "p.r.a"), ("unsub", "p.r.a"), ("sub", "p.r.a")]
    assert not _confirmed(inbox)
    listener._confirmed(b"p.r.a")  # the second one's
    assert _confirmed(inbox)


async def test_an_answer_to_a_channel_let_go_still_counts() -> None:
    listener, inbox, pubsub = _listener()
    listener.want(ROOM, True)
    await listener._send_pending(pubsub)
    listener._drop(ROOM)
    listener._confirmed(b"p.r.a")  # arrives while the channel is not held
    await listener._send_pending(pubsub)
    listener.want(ROOM, True)
    await listener._send_pending(pubsub)
    listener._confirmed(b"p.r.a")
    assert _confirmed(inbox)


async def test_a_confirmation_nobody_asked_for_is_a_lost_link() -> None:
    listener, _, pubsub = _listener()
    listener._subscribe(BROADCAST)
    await listener._send_pending(pubsub)
    listener._confirmed(b"p.b")
    with pytest.raises(_LinkLost):
        listener._confirmed(b"p.b")  # redis-py subscribed again on a new connection
