"""roomcast-harness: install and run the local infrastructure.

prepare   install redis-server if missing and resolve the Kafka jars (cached);
            --browser also installs chromium for the browser test
infra     start Redis and Kafka on free ports, print their addresses, run until Ctrl-C
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from roomcast_harness.debian import ensure_program
from roomcast_harness.kafka_broker import KafkaBroker, ensure_kafka_jars
from roomcast_harness.redis_server import RedisServer, ensure_redis_installed
from roomcast_harness.stack import StackOptions, run_stack


def _prepare(args: argparse.Namespace) -> int:
    print(f"redis-server: {ensure_redis_installed()}")
    if not args.no_kafka:
        print(f"kafka jars:   {ensure_kafka_jars()}")
    if args.browser:
        print(f"chromium:     {ensure_program('chromium', 'chromium')}")
    return 0


def _infra(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="roomcast-infra-"))
    redis = None if os.environ.get("ROOMCAST_REDIS__URL") else RedisServer(workdir / "redis")
    kafka = (
        None
        if os.environ.get("ROOMCAST_KAFKA__BOOTSTRAP_SERVERS")
        else KafkaBroker(workdir / "kafka")
    )
    stopping = False

    def on_signal(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        if redis:
            redis.start()
        if kafka:
            kafka.start()
        redis_url = redis.url if redis else os.environ["ROOMCAST_REDIS__URL"]
        bootstrap = (
            kafka.bootstrap_servers if kafka else os.environ["ROOMCAST_KAFKA__BOOTSTRAP_SERVERS"]
        )
        print(f"ROOMCAST_REDIS__URL={redis_url}")
        print(f"ROOMCAST_KAFKA__BOOTSTRAP_SERVERS={bootstrap}", flush=True)
        while not stopping:
            time.sleep(0.2)
    finally:
        if kafka:
            kafka.stop()
        if redis:
            redis.stop()
    return 0


def _stack(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="roomcast-stack-"))
    bus = args.bus or os.environ.get("ROOMCAST_BUS__KIND") or "kafka"
    options = StackOptions(
        workdir=workdir, edges=args.edges, tracing=args.tracing, bus=bus, ingest=args.ingest
    )
    return run_stack(options)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="roomcast-harness", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prepare = sub.add_parser("prepare", help="install redis-server, resolve the Kafka jars")
    prepare.add_argument("--browser", action="store_true", help="also install chromium (tests)")
    prepare.add_argument(
        "--no-kafka", action="store_true", help="skip the Kafka jars (the Redis Streams bus)"
    )
    prepare.set_defaults(func=_prepare)
    infra = sub.add_parser("infra", help="run Redis and Kafka until interrupted")
    infra.add_argument("--workdir", help="where data and logs go (default: a new temp dir)")
    infra.set_defaults(func=_infra)
    stack = sub.add_parser("stack", help="run the whole local stack until interrupted")
    stack.add_argument(
        "--edges", type=int, default=1, choices=range(1, 17), help="ws-edge processes (1-16)"
    )
    stack.add_argument(
        "--ingest",
        choices=["", "all", "shared"],
        default="",
        help="shared: the edges split the partitions and route messages to each other",
    )
    stack.add_argument("--workdir", help="where data and logs go (default: a new temp dir)")
    stack.add_argument(
        "--tracing",
        choices=["", "jaeger"],
        default="",
        help="jaeger: also run Jaeger and send every service's traces to it",
    )
    stack.add_argument(
        "--bus",
        choices=["kafka", "redis"],
        help="redis: Redis Streams (with AOF) instead of Kafka, no Java needed"
        " (default: ROOMCAST_BUS__KIND, else kafka)",
    )
    stack.set_defaults(func=_stack)
    args = parser.parse_args(argv)
    sys.exit(args.func(args))
