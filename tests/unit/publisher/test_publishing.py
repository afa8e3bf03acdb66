"""The publishing domain with in-memory ports: order, idempotency, honest refusals."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from roomcast_publisher.domain.ports import Receipt
from roomcast_publisher.domain.publishing import (
    Draft,
    Publisher,
    PublishPolicy,
    Reason,
    Refusal,
)
from tests.unit.publisher.fakes import FakeObserver, FakeSink, FakeStore

POLICY = PublishPolicy(idempotency_window=60, hold_seconds=30, wait_seconds=5, poll_seconds=0.01)


def make(
    sink: FakeSink | None = None,
    store: FakeStore | None = None,
    policy: PublishPolicy = POLICY,
) -> tuple[Publisher, FakeSink, FakeStore, FakeObserver]:
    sink = sink or FakeSink()
    store = store or FakeStore()
    observer = FakeObserver()
    ids = (f"gen-{n}" for n in itertools.count())
    publisher = Publisher(
        sink,
        store,
        observer,
        policy,
        clock=lambda: "2025-08-06T14:20:00.000Z",
        new_id=lambda: next(ids),
    )
    return publisher, sink, store, observer


def draft(room: str | None = None, message_id: str | None = None, payload: object = 1) -> Draft:
    return Draft(topic="order", type="event", room=room, payload=payload, message_id=message_id)


async def test_publishes_in_order_and_names_unnamed_messages() -> None:
    publisher, sink, store, observer = make()
    outcomes = await publisher.publish([draft("r1", payload=n) for n in range(5)])
    assert [o.message_id for o in outcomes] == [f"gen-{n}" for n in range(5)]
    assert all(isinstance(o, Receipt) and not o.replayed for o in outcomes)
    assert [m.payload for m in sink.records] == [0, 1, 2, 3, 4]
    assert [o.position for o in outcomes if isinstance(o, Receipt)] == [f"0:{n}" for n in range(5)]
    assert sink.records[0].receive_time == "2025-08-06T14:20:00.000Z"
    assert sink.records[0].key == "r1"
    assert store.claims == 0  # generated ids need no idempotency record
    assert observer.records == 5
    assert (len(sink.records), sink.calls) == (5, 1)  # one hand-over for the whole batch


async def test_same_message_id_publishes_once_and_returns_the_first_result() -> None:
    publisher, sink, _, _ = make()
    [first] = await publisher.publish([draft(message_id="m-1", payload="a")])
    [second] = await publisher.publish([draft(message_id="m-1", payload="b")])
    assert isinstance(first, Receipt)
    assert isinstance(second, Receipt)
    assert (second.message_id, second.position, second.receive_time) == (
        first.message_id,
        first.position,
        first.receive_time,
    )
    assert second.replayed
    assert [m.payload for m in sink.records] == ["a"]


async def test_concurrent_duplicate_waits_for_the_first_result() -> None:
    gate = asyncio.Event()
    publisher, sink, _, _ = make(sink=FakeSink(gate=gate))
    first = asyncio.create_task(publisher.publish([draft(message_id="m-2")]))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(publisher.publish([draft(message_id="m-2")]))
    await asyncio.sleep(0.05)
    assert not second.done()
    gate.set()
    [a], [b] = await asyncio.gather(first, second)
    assert isinstance(a, Receipt)
    assert isinstance(b, Receipt)
    assert b.position == a.position
    assert len(sink.records) == 1


async def test_duplicate_of_a_stuck_publish_gets_in_progress() -> None:
    store = FakeStore(values={"m-3": "someone-else"})
    policy = PublishPolicy(idempotency_window=60, hold_seconds=30, wait_seconds=0.1)
    publisher, sink, _, observer = make(store=store, policy=policy)
    [outcome] = await publisher.publish([draft(message_id="m-3")])
    assert isinstance(outcome, Refusal)
    assert outcome.reason is Reason.IN_PROGRESS
    assert sink.records == []
    assert observer.failures == ["publish_in_progress"]


async def test_store_down_refuses_keyed_messages_but_publishes_unkeyed() -> None:
    publisher, sink, _, observer = make(store=FakeStore(down=True))
    keyed, unkeyed = await publisher.publish([draft(message_id="m-4"), draft()])
    assert isinstance(keyed, Refusal)
    assert keyed.reason is Reason.IDEMPOTENCY_UNAVAILABLE
    assert keyed.message_id == "m-4"
    assert isinstance(unkeyed, Receipt)
    assert [m.message_id for m in sink.records] == [unkeyed.message_id]
    assert observer.failures == ["idempotency_unavailable"]


async def test_unpublished_message_releases_its_id_for_a_retry() -> None:
    sink = FakeSink(fail_delivery=True)
    publisher, _, store, observer = make(sink=sink)
    [failed] = await publisher.publish([draft(message_id="m-5")])
    assert isinstance(failed, Refusal)
    assert failed.reason is Reason.KAFKA_UNAVAILABLE
    assert store.released == ["m-5"]
    assert observer.failures == ["kafka_unavailable"]
    sink.fail_delivery = False
    [retried] = await publisher.publish([draft(message_id="m-5")])
    assert isinstance(retried, Receipt)
    assert not retried.replayed
    assert len(sink.records) == 1


async def test_refused_enqueue_is_not_published() -> None:
    publisher, sink, store, _ = make(sink=FakeSink(refuse_enqueue=True))
    outcomes = await publisher.publish([draft(message_id="m-6"), draft()])
    assert all(isinstance(o, Refusal) and o.reason is Reason.KAFKA_UNAVAILABLE for o in outcomes)
    assert sink.records == []
    assert "m-6" not in store.values


async def test_waiter_publishes_itself_when_the_first_attempt_fails() -> None:
    gate = asyncio.Event()
    sink = FakeSink(gate=gate, fail_delivery=True)
    publisher, _, _, _ = make(sink=sink)
    first = asyncio.create_task(publisher.publish([draft(message_id="m-7")]))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(publisher.publish([draft(message_id="m-7")]))
    await asyncio.sleep(0.05)
    gate.set()
    [a] = await first
    assert isinstance(a, Refusal)
    sink.fail_delivery = False
    [b] = await second
    assert isinstance(b, Receipt)
    assert len(sink.records) == 1


async def test_batch_mixes_replays_and_new_messages_in_order() -> None:
    publisher, sink, _, _ = make()
    [old] = await publisher.publish([draft("r", message_id="old")])
    outcomes = await publisher.publish(
        [draft("r", payload="x"), draft("r", message_id="old"), draft("r", payload="y")]
    )
    assert isinstance(outcomes[1], Receipt)
    assert outcomes[1].replayed
    assert isinstance(old, Receipt)
    assert outcomes[1].position == old.position
    assert [m.payload for m in sink.records] == [1, "x", "y"]


async def test_unknown_outcome_keeps_the_id_held() -> None:
    policy = PublishPolicy(idempotency_window=60, hold_seconds=30, wait_seconds=0.1)
    sink = FakeSink(unknown_delivery=True)
    publisher, _, store, observer = make(sink=sink, policy=policy)
    [outcome] = await publisher.publish([draft(message_id="m-8")])
    assert isinstance(outcome, Refusal)
    assert outcome.reason is Reason.OUTCOME_UNKNOWN
    assert store.released == []
    sink.unknown_delivery = False
    [retry] = await publisher.publish([draft(message_id="m-8")])
    assert isinstance(retry, Refusal)
    assert retry.reason is Reason.IN_PROGRESS  # not a second, possibly duplicate, publish
    assert observer.failures == ["publish_outcome_unknown", "publish_in_progress"]


async def test_a_batch_is_one_hand_over_one_claim_and_one_settle() -> None:
    sink = FakeSink(refuse_payloads=frozenset({2}))
    publisher, _, store, observer = make(sink=sink)
    outcomes = await publisher.publish([draft("r", f"b-{n}", payload=n) for n in range(4)])
    assert [isinstance(o, Receipt) for o in outcomes] == [True, True, False, True]
    assert store.released == ["b-2"]  # let go of before the answer; only the failed one
    await publisher.close()  # receipts are recorded after the answer
    assert (sink.calls, store.settles) == (1, 2)  # one release call, one receipts call
    assert {k for k, v in store.values.items() if isinstance(v, Receipt)} == {"b-0", "b-1", "b-3"}
    assert observer.records == 3
    assert observer.failures == ["kafka_unavailable"]


async def test_a_crashing_sink_releases_every_claim() -> None:
    publisher, _, store, _ = make(sink=FakeSink(crash=True))
    with pytest.raises(RuntimeError, match="sink bug"):
        await publisher.publish([draft(message_id="c-1"), draft(message_id="c-2")])
    assert store.values == {}
    assert sorted(store.released) == ["c-1", "c-2"]


async def test_receipts_are_recorded_after_the_answer_and_duplicates_wait_for_them() -> None:
    gate = asyncio.Event()
    store = FakeStore(settle_gate=gate)
    publisher, sink, _, _ = make(store=store)
    [first] = await publisher.publish([draft(message_id="r-1")])  # answered, receipt pending
    assert isinstance(first, Receipt)
    assert isinstance(store.values["r-1"], str)  # still the claim marker
    duplicate = asyncio.create_task(publisher.publish([draft(message_id="r-1")]))
    await asyncio.sleep(0.05)
    assert not duplicate.done()  # waits for the receipt rather than publishing again
    gate.set()
    [second] = await duplicate
    assert isinstance(second, Receipt)
    assert second.replayed
    assert second.position == first.position
    assert len(sink.records) == 1
    await publisher.close()
    assert isinstance(store.values.get("r-1"), Receipt)
