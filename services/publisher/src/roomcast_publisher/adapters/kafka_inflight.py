"""Which records reached a broker that never gave a definite answer.

Such a record may have been appended although its produce request "failed": the
connection died after the broker wrote it, or a retriable error came back after the
append (an acks=all wait ends in NOT_LEADER_OR_FOLLOWER when the leader resigns in a
controlled shutdown, or in REQUEST_TIMED_OUT). Non-retriable errors are validation
refusals made before any append. Failing it later and answering 503 could then lie, so the sink reports
it as an unknown outcome instead. A request that never left the process
(NodeNotReadyError: no connection) is not ambiguous.

aiokafka exposes none of this, so two methods of one producer instance are wrapped;
the fault-injection test fails if aiokafka's internals move.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import NodeNotReadyError, for_code
from aiokafka.protocol.produce import ProduceRequest

# The batches of the produce request being sent by the current sender task.
_BATCHES: ContextVar[dict[Any, Any] | None] = ContextVar("roomcast_produce_batches", default=None)


def _maybe_appended(error_code: int) -> bool:
    return error_code != 0 and bool(for_code(error_code).retriable)


class InFlightTracker:
    """Collects the send futures of records whose fate a broker left open."""

    def __init__(self) -> None:
        self._unknown: set[asyncio.Future[Any]] = set()

    def is_unknown(self, future: asyncio.Future[Any]) -> bool:
        return future in self._unknown

    def forget(self, future: asyncio.Future[Any]) -> None:
        self._unknown.discard(future)

    def _mark(self, batches: Iterable[Any]) -> None:
        for batch in batches:
            for future, _ in batch._msg_futures:
                self._unknown.add(future)

    def install(self, producer: AIOKafkaProducer) -> None:
        sender = producer._sender
        client = producer.client
        send_produce_req = sender._send_produce_req
        client_send = client.send

        async def tracked_produce(node_id: int, batches: dict[Any, Any]) -> None:
            token = _BATCHES.set(batches)
            try:
                await send_produce_req(node_id, batches)
            finally:
                _BATCHES.reset(token)

        async def tracked_send(node_id: int, request: Any, **kwargs: Any) -> Any:
            batches = _BATCHES.get()
            if batches is None or not isinstance(request, ProduceRequest):
                return await client_send(node_id, request, **kwargs)
            try:
                response = await client_send(node_id, request, **kwargs)
            except NodeNotReadyError:
                raise  # no connection: the request never left this process
            except BaseException:
                self._mark(batches.values())
                raise
            by_partition = {(tp.topic, tp.partition): b for tp, b in batches.items()}
            for topic, partitions in response.topics:
                for info in partitions:
                    if _maybe_appended(info[1]) and (topic, info[0]) in by_partition:
                        self._mark([by_partition[(topic, info[0])]])
            return response

        sender._send_produce_req = tracked_produce
        client.send = tracked_send
