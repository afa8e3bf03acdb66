"""Everything the publisher does inside aiokafka's producer, in one place.

aiokafka has no public way to append to a partition's open batch without a
coroutine per record, to tell that its sender task died, or to give up on the
records it holds; these functions reach its private attributes for that. Each one
they touch is listed in `REQUIRED`, and `check_aiokafka()` (run when the app is
created) stops the publisher at start, naming what is missing, on an aiokafka that
changed them, instead of failing requests one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import inspect
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, KafkaTimeoutError
from aiokafka.producer import message_accumulator, sender

from roomcast_core.tokens import StartupError

# (owner, attribute, why the publisher needs it)
REQUIRED = (
    ("AIOKafkaProducer", "_message_accumulator", "the batches a record joins"),
    ("AIOKafkaProducer", "_serialize", "the size check send() makes"),
    ("AIOKafkaProducer", "_sender", "its task, to see it died and to stop it"),
    ("MessageAccumulator", "_closed", "no append to a closing producer"),
    ("MessageAccumulator", "_exception", "no append to a failed producer"),
    ("MessageAccumulator", "_batches", "the open batch per partition"),
    ("MessageAccumulator", "_append_batch", "a new open batch"),
    ("MessageAccumulator", "create_builder", "a new open batch"),
    ("MessageAccumulator", "_pending_batches", "the batches sent and not answered"),
    ("MessageAccumulator", "fail_all", "every held record failed at once"),
    ("MessageBatch", "append", "a record into a batch, its future back"),
    ("MessageBatch", "future", "a batch's outcome"),
    ("MessageBatch", "_drain_waiter", "a batch's outcome, retrieved after fail_all"),
    ("Sender", "sender_task", "the task that sends batches"),
)


class AiokafkaUnsupported(StartupError):
    """The installed aiokafka lacks an internal the publisher depends on."""


def _has(cls: type, name: str) -> bool:
    """A class attribute, or an attribute its __init__ assigns."""
    if hasattr(cls, name):
        return True
    try:
        source = inspect.getsource(vars(cls)["__init__"])
    except (OSError, TypeError, KeyError):
        return False
    return f"self.{name} =" in source or f"self.{name}:" in source


def missing_internals() -> list[str]:
    owners: dict[str, type] = {
        "AIOKafkaProducer": AIOKafkaProducer,
        "MessageAccumulator": message_accumulator.MessageAccumulator,
        "MessageBatch": message_accumulator.MessageBatch,
        "Sender": sender.Sender,
    }
    return [f"{owner}.{name}" for owner, name, _ in REQUIRED if not _has(owners[owner], name)]


def check_aiokafka() -> None:
    missing = missing_internals()
    if missing:
        needs = {f"{owner}.{name}": why for owner, name, why in REQUIRED}
        detail = "; ".join(f"{name} ({needs[name]})" for name in missing)
        version = importlib.metadata.version("aiokafka")
        raise AiokafkaUnsupported(
            f"aiokafka {version} changed internals the publisher uses: {detail}. "
            "Install an aiokafka release this publisher was tested with."
        )


def append_now(
    producer: AIOKafkaProducer,
    tp: TopicPartition,
    key: bytes,
    value: bytes,
    headers: list[tuple[str, bytes]],
) -> asyncio.Future[Any] | None:
    """What producer.send() does when it need not wait (metadata known, room in the
    partition's open batch): the record's future. None when it would wait or refuse;
    then send() itself takes over. Skips a coroutine and a timer per record, and
    aiokafka's per-call checks that cannot apply here (a producer without transactions,
    the partition already chosen). Private attributes, as in abandon."""
    accumulator = producer._message_accumulator
    if accumulator._closed or accumulator._exception is not None:
        return None
    producer._serialize(key, value, headers)  # the size check send() makes
    queue = accumulator._batches.get(tp)
    batch = queue[-1] if queue else accumulator._append_batch(accumulator.create_builder(), tp)
    future: asyncio.Future[Any] | None = batch.append(key, value, None, headers=headers)
    return future


def sender_died(producer: AIOKafkaProducer) -> bool:
    task = producer._sender.sender_task
    return task is not None and task.done()


async def abandon(producer: AIOKafkaProducer, reason: str) -> None:
    """Make sure a producer never sends again and fail every record it still holds.

    aiokafka has no public way to give up on pending records, hence the private
    attributes; the fault-injection test breaks loudly if they change.
    """
    sender = producer._sender
    task = sender.sender_task if sender is not None else None
    if task is not None and not task.done():
        task.cancel()
        # The sender awaits its in-flight produce requests before it ends; their
        # answers (success or failure) still resolve their records.
        await asyncio.wait({task})
    accumulator = producer._message_accumulator
    held = [batch for queue in accumulator._batches.values() for batch in queue]
    held += list(accumulator._pending_batches)
    for batch in held:
        # A retried batch left the pending set when it was queued again; aiokafka's
        # done-callback removes it from there once more, so put it back first.
        accumulator._pending_batches.add(batch)
    accumulator.fail_all(KafkaTimeoutError(reason))
    for batch in held:
        for waiter in (batch.future, batch._drain_waiter):
            if waiter.done() and not waiter.cancelled():
                waiter.exception()  # retrieved: nobody else will look at these
    with contextlib.suppress(KafkaError, OSError, TimeoutError):
        async with asyncio.timeout(5):
            await producer.stop()
