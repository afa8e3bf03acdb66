"""Benchmark anchor: the publisher's records sent by a bare aiokafka producer.

Same producer settings as the publisher (``producer_options``: idempotent, acks=all,
same batch and request sizes), same keys, values and headers, every record handed to
the producer without awaiting the previous one, then all acknowledgements awaited: the
most this Kafka client does from one Python process. Prints one JSON line:
``{"records": N, "acked": N, "seconds": S, "cpu_seconds": C}``.

Usage: python -m bench.peers.bare_aiokafka --bootstrap HOST:PORT --topic T --records N
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid

import orjson
import uvloop
from aiokafka import AIOKafkaProducer

from bench.messages import wire_message
from bench.publisher import bench_request
from roomcast_core import wire
from roomcast_core.settings import KafkaSettings
from roomcast_publisher.adapters.kafka_sink import producer_options
from roomcast_publisher.models import ENVELOPE_BYTES

MAX_PAYLOAD_BYTES = 65536  # the publisher's default, so batch sizes match


async def produce(bootstrap: str, topic: str, records: int, run_id: str) -> dict[str, float]:
    settings = KafkaSettings(
        bootstrap_servers=bootstrap,
        topic=topic,
        partitions=3,
        replication_factor=1,
        request_timeout=10.0,
    )
    producer = AIOKafkaProducer(**producer_options(settings, MAX_PAYLOAD_BYTES + ENVELOPE_BYTES))
    await producer.start()
    try:
        await producer.partitions_for(topic)
        receive_time = wire.now_time()
        messages = [
            wire_message(bench_request(run_id, seq, with_id=True), receive_time)
            for seq in range(records)
        ]
        cpu, started = time.process_time(), time.monotonic()
        futures = [
            await producer.send(
                topic,
                value=wire.encode_value(m),
                key=wire.encode_key(m),
                headers=wire.encode_headers(m),
            )
            for m in messages
        ]
        results = await asyncio.gather(*futures, return_exceptions=True)
        seconds, cpu = time.monotonic() - started, time.process_time() - cpu
    finally:
        await producer.stop()
    acked = sum(1 for r in results if not isinstance(r, BaseException))
    return {"records": records, "acked": acked, "seconds": seconds, "cpu_seconds": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peers.bare_aiokafka")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--run-id", default=uuid.uuid4().hex[:8])
    args = parser.parse_args()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    result = asyncio.run(produce(args.bootstrap, args.topic, args.records, args.run_id))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
