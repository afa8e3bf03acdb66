"""roomcast-harness: install and run the local infrastructure.

prepare   install redis-server if missing and resolve the Kafka jars (cached);
            --browser also installs chromium and nginx for the browser and proxy tests
infra     start Redis and Kafka on free ports, print their addresses, run until Ctrl-C
stack     the whole local stack (what `make run` runs), until Ctrl-C

Without --workdir, data and logs go to a temporary directory removed on exit.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from roomcast_harness.debian import ensure_program
from roomcast_harness.kafka_broker import KafkaBroker, ensure_kafka_jars
from roomcast_harness.nginx import ensure_nginx_installed
from roomcast_harness.redis_server import RedisServer, ensure_redis_installed
from roomcast_harness.stack import StackOptions, run_stack


def _prepare(args: argparse.Namespace) -> int:
    print(f"redis-server: {ensure_redis_installed()}")
    if not args.no_kafka:
        print(f"kafka jars:   {ensure_kafka_jars()}")
    if args.browser:
        print(f"chromium:     {ensure_program('chromium', 'chromium')}")
        print(f"nginx:        {ensure_nginx_installed()}")
    return 0


@contextlib.contextmanager
def _workdir(named: str | None, prefix: str) -> Iterator[Path]:
    """The directory named, kept; else a temporary one, removed however we exit."""
    if named:
        yield Path(named)
        return
    temporary = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield temporary
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _infra(args: argparse.Namespace) -> int:
    with _workdir(args.workdir, "roomcast-infra-") as workdir:
        return _run_infra(workdir)


def _run_infra(workdir: Path) -> int:
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
    bus = args.bus or os.environ.get("ROOMCAST_BUS__KIND") or "kafka"
    with _workdir(args.workdir, "roomcast-stack-") as workdir:
        options = StackOptions(
            workdir=workdir,
            edges=args.edges,
            tracing=args.tracing,
            bus=bus,
            host=args.host,
            ingest=args.ingest,
        )
        return run_stack(options)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="roomcast-harness", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prepare = sub.add_parser("prepare", help="install redis-server, resolve the Kafka jars")
    prepare.add_argument(
        "--browser", action="store_true", help="also install chromium and nginx (tests)"
    )
    prepare.add_argument(
        "--no-kafka", action="store_true", help="skip the Kafka jars (the Redis Streams bus)"
    )
    prepare.set_defaults(func=_prepare)
    infra = sub.add_parser("infra", help="run Redis and Kafka until interrupted")
    infra.add_argument(
        "--workdir", help="where data and logs go, kept (default: a temp dir removed on exit)"
    )
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
    stack.add_argument(
        "--workdir", help="where data and logs go, kept (default: a temp dir removed on exit)"
    )
    stack.add_argument(
        "--host",
        default="127.0.0.1",
        help="address the services listen on (default 127.0.0.1; 0.0.0.0 for every"
        " interface); ROOMCAST_<SERVICE>__HOST still wins",
    )
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
