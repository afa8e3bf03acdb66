"""`python -m bench.publisher [--plan full|quick|smoke]`: publisher throughput against anchors.

Everything runs in one sitting on one Kafka (and one Redis), so the ratios compare like
with like even on a busy machine:

- publisher, one message per request, from ``clients`` keep-alive HTTP connections, with
  and without ``message_id``;
- publisher, batches of 100 and of 1 000 from a few concurrent connections, with and
  without ``message_id``;
- anchor ``bare_aiokafka``: the same records (keys, values, headers) sent by a bare
  aiokafka producer with the publisher's producer settings (bench/peers/bare_aiokafka.py);
- anchor ``producer_performance``: Kafka's own ``ProducerPerformance`` (Java, the
  ``kafka-tools`` jar at the broker's version), acks=all, idempotent, the same values;
- anchor ``bare_http``: an aiohttp JSON endpoint that only parses and answers
  (bench/peers/bare_json.py), driven by the same HTTP clients.

"Acknowledged" means a 202 (or a 202 result inside a batch); the Kafka end offsets are
read around every publisher scenario, so a figure can never count records that did not
land. Results go into ``results/latest.json`` (``quick.json``, ``smoke.json``) under
``"publisher_anchors"``, merged into whatever the fan-out benchmark wrote there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import orjson
import uvloop
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.causes import explain
from bench.messages import PAD, TYPE, wire_message
from bench.stats import Verdict, rate, ratio, verdict_lines
from bench.system import cpu_times
from roomcast_core import wire
from roomcast_harness.kafka_broker import KAFKA_VERSION, KafkaBroker, _java
from roomcast_harness.procs import free_port, spawn, stop, tail, wait_for
from roomcast_harness.redis_server import RedisServer
from roomcast_harness.services import ServiceProcess, http_status

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
TOOLS_POM = Path(__file__).resolve().parent / "peers" / "kafka_tools" / "pom.xml"
ROOMS = 64  # keys spread over every partition, as many rooms would
PARTITIONS = 3
RESULT_KEY = "publisher_anchors"
TARGET_RATIO = 0.6
Log = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class PublisherPlan:
    name: str
    clients: int  # keep-alive connections for one message per request
    singles: int  # requests per single-message scenario
    batch_clients: int  # concurrent connections posting batches
    batches: dict[int, int]  # batch size -> requests
    bare_records: int  # records the bare aiokafka producer sends
    perf_records: int  # records ProducerPerformance sends (more: the JVM warms up first)
    warmup: int  # requests before each HTTP scenario, not measured


PLANS = {
    plan.name: plan
    for plan in (
        PublisherPlan("full", 64, 20_000, 4, {100: 300, 1000: 40}, 60_000, 300_000, 1_000),
        PublisherPlan("quick", 64, 5_000, 4, {100: 80, 1000: 10}, 20_000, 100_000, 500),
        PublisherPlan("smoke", 4, 40, 2, {100: 2, 1000: 1}, 300, 300, 10),
    )
}


# ---- the messages ----------------------------------------------------------------


def bench_request(run_id: str, seq: int, *, with_id: bool) -> dict[str, Any]:
    """One message as POSTed: a room per key, ~200 bytes once it is a Kafka record."""
    body: dict[str, Any] = {
        "room": f"room-{seq % ROOMS}",
        "type": TYPE,
        "payload": {"seq": seq, "pad": PAD},
    }
    if with_id:
        body["message_id"] = f"{run_id}-{seq:08d}"
    return body


def record_value(run_id: str, seq: int) -> bytes:
    """The Kafka record value the publisher would produce for bench_request(run_id, seq)."""
    request = bench_request(run_id, seq, with_id=True)
    return wire.encode_value(wire_message(request, wire.now_time()))


# ---- a lean HTTP/1.1 keep-alive client ---------------------------------------------


class HttpError(Exception):
    pass


class _Connection(asyncio.Protocol):
    """One keep-alive connection, one request at a time; needs Content-Length answers.

    aiohttp's client costs more CPU per request than the servers measured here, so it
    would measure itself; this one parses only the status line and Content-Length.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self._buffer[:end]).lower()
        match = re.search(rb"\r\ncontent-length:\s*(\d+)", head)
        if match is None:
            waiter.set_exception(HttpError("answer without Content-Length"))
            return
        total = end + 4 + int(match.group(1))
        if len(self._buffer) < total:
            return
        body = bytes(self._buffer[end + 4 : total])
        del self._buffer[:total]
        waiter.set_result((int(head[9:12]), body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(HttpError(f"connection lost: {exc!r}"))

    async def request(self, data: bytes) -> tuple[int, bytes]:
        assert self._transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(data)
        return await self._waiter

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def http_request(path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@dataclass(frozen=True, slots=True)
class HttpRun:
    requests: int
    statuses: dict[str, int]
    acked: int  # messages answered 202 (one per 202 single, per 202 result in a batch)
    seconds: float


def _acked_in(status: int, body: bytes, messages: int) -> int:
    if status == 202:
        return messages
    if status == 207:
        results = orjson.loads(body).get("results", [])
        return sum(1 for r in results if r.get("status") == 202)
    return 0


async def drive(port: int, requests: Sequence[tuple[bytes, int]], clients: int) -> HttpRun:
    """Send every request over `clients` keep-alive connections, as fast as answers come."""
    loop = asyncio.get_running_loop()
    connections = []
    for _ in range(clients):
        _, protocol = await loop.create_connection(_Connection, "127.0.0.1", port)
        connections.append(protocol)
    statuses: Counter[str] = Counter()
    acked = 0
    pending = iter(requests)

    async def client(connection: _Connection) -> None:
        nonlocal acked
        for data, messages in pending:
            status, body = await connection.request(data)
            statuses[str(status)] += 1
            acked += _acked_in(status, body, messages)

    started = time.monotonic()
    try:
        await asyncio.gather(*(client(c) for c in connections))
    finally:
        seconds = time.monotonic() - started
        for connection in connections:
            connection.close()
    return HttpRun(len(requests), dict(statuses), acked, seconds)


def single_requests(run_id: str, count: int, *, with_id: bool) -> list[tuple[bytes, int]]:
    return [
        (http_request("/v1/messages", orjson.dumps(bench_request(run_id, i, with_id=with_id))), 1)
        for i in range(count)
    ]


def batch_requests(run_id: str, size: int, count: int, *, with_id: bool) -> list[tuple[bytes, int]]:
    out = []
    for b in range(count):
        messages = [bench_request(run_id, b * size + i, with_id=with_id) for i in range(size)]
        out.append((http_request("/v1/messages/batch", orjson.dumps({"messages": messages})), size))
    return out


# ---- Kafka -----------------------------------------------------------------------


async def create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)]
        )
    finally:
        await admin.close()


async def records_in(bootstrap: str, topic: str) -> int:
    """Sum of the topic's end offsets: every record Kafka holds for it."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


def tools_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "roomcast" / f"kafka-tools-{KAFKA_VERSION}"


def ensure_kafka_tools() -> Path:
    """The class path of kafka-tools at the broker's version, resolved once with Maven."""
    libs, marker = tools_dir() / "libs", tools_dir() / "complete"
    if marker.exists():
        return libs
    if shutil.which("mvn") is None:
        raise RuntimeError("mvn is needed to fetch Kafka's ProducerPerformance tool")
    tools_dir().mkdir(parents=True, exist_ok=True)
    shutil.rmtree(libs, ignore_errors=True)
    subprocess.run(
        [
            "mvn", "-q", "-B", "-f", str(TOOLS_POM),
            "dependency:copy-dependencies",
            f"-Dkafka.version={KAFKA_VERSION}",
            f"-DoutputDirectory={libs}",
            "-DincludeScope=runtime",
        ],
        check=True,
        cwd=tools_dir(),
    )  # fmt: skip
    if not any(libs.glob(f"kafka-tools-{KAFKA_VERSION}.jar")):
        raise RuntimeError("Maven finished but the kafka-tools jar is missing")
    marker.write_text(KAFKA_VERSION + "\n")
    return libs


_PERF_LINE = re.compile(r"^(\d+) records sent, ([\d.]+) records/sec")


def parse_producer_performance(output: str) -> tuple[int, float] | None:
    """(records, records/s) from ProducerPerformance's final summary line."""
    found = None
    for line in output.splitlines():
        match = _PERF_LINE.match(line.strip())
        if match:
            found = (int(match.group(1)), float(match.group(2)))
    return found


def producer_performance(
    bootstrap: str, topic: str, records: int, payload_file: Path
) -> dict[str, Any]:
    libs = ensure_kafka_tools()
    argv = [
        _java(), "-Xmx256m", "-cp", f"{libs}/*",
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic", topic, "--num-records", str(records), "--throughput", "-1",
        "--payload-file", str(payload_file),
        "--producer-props", f"bootstrap.servers={bootstrap}", "acks=all",
        "enable.idempotence=true", "linger.ms=5", "max.in.flight.requests.per.connection=5",
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    seconds = time.monotonic() - started
    parsed = parse_producer_performance(done.stdout)
    if done.returncode != 0 or parsed is None:
        raise RuntimeError(f"ProducerPerformance failed: {(done.stderr or done.stdout)[-800:]}")
    sent, per_s = parsed
    return {"records": sent, "acked_per_s": round(per_s), "wall_seconds": round(seconds, 2)}


# ---- processes ---------------------------------------------------------------------


class BareHttp:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self._log = workdir / "bare-json.log"
        self._proc = spawn(
            [sys.executable, "-m", "bench.peers.bare_json", "--port", str(self.port)],
            self._log,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
        )
        url = f"http://127.0.0.1:{self.port}/health"
        try:
            wait_for(lambda: self._proc.poll() is not None or http_status(url) == 200, 60, "bare")
        except TimeoutError:
            self.stop()
            raise
        if self._proc.poll() is not None:
            raise RuntimeError(f"bare JSON endpoint exited:\n{tail(self._log)}")

    @property
    def pid(self) -> int:
        return self._proc.pid

    def stop(self) -> None:
        stop(self._proc, timeout=10)


def bare_aiokafka(bootstrap: str, topic: str, records: int) -> dict[str, Any]:
    argv = [
        sys.executable, "-m", "bench.peers.bare_aiokafka",
        "--bootstrap", bootstrap, "--topic", topic, "--records", str(records),
    ]  # fmt: skip
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if done.returncode != 0:
        raise RuntimeError(f"bare aiokafka producer failed: {done.stderr[-800:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "records": result["records"],
        "acked": result["acked"],
        "acked_per_s": rate(result["acked"], result["seconds"]),
        "cpu_us_per_message": round(result["cpu_seconds"] * 1e6 / max(1, result["acked"]), 1),
    }


# ---- the run -------------------------------------------------------------------------


async def _http_scenario(
    name: str,
    port: int,
    pid: int,
    requests: list[tuple[bytes, int]],
    warmup: list[tuple[bytes, int]],
    clients: int,
    kafka: tuple[str, str] | None,
    log: Log,
) -> dict[str, Any]:
    if warmup:
        await drive(port, warmup, clients)
    before_records = await records_in(*kafka) if kafka else None
    before = cpu_times(pid)
    run = await drive(port, requests, clients)
    cpu = cpu_times(pid) - before
    messages = sum(m for _, m in requests)
    out: dict[str, Any] = {
        "requests": run.requests,
        "messages": messages,
        "clients": clients,
        "statuses": run.statuses,
        "acked": run.acked,
        "seconds": round(run.seconds, 3),
        "acked_per_s": rate(run.acked, run.seconds),
        "server_cpu_us_per_message": round(cpu.total * 1e6 / max(1, run.acked), 1),
        "server_cpu_share": round(cpu.total / run.seconds, 3) if run.seconds > 0 else None,
    }
    if kafka:
        out["records_landed"] = await records_in(*kafka) - (before_records or 0)
    log(f"{name}: {out['acked_per_s']:,.0f} acked/s ({out['statuses']})")
    return out


async def measure(
    plan: PublisherPlan,
    workdir: Path,
    log: Log,
    *,
    redis_url: str | None = None,
    bootstrap: str | None = None,
) -> dict[str, Any]:
    """Run every scenario; Redis and Kafka are started here unless given."""
    with contextlib.ExitStack() as stack:
        if redis_url is None:
            redis_url = stack.enter_context(RedisServer(workdir / "redis")).url
        if bootstrap is None:
            log("starting Kafka")
            kafka = KafkaBroker(workdir / "kafka", partitions=PARTITIONS)
            await asyncio.to_thread(kafka.start)
            stack.callback(kafka.stop)
            bootstrap = kafka.bootstrap_servers
        return await _measure(plan, workdir, log, redis_url, bootstrap, stack)


async def _measure(
    plan: PublisherPlan,
    workdir: Path,
    log: Log,
    redis_url: str,
    bootstrap: str,
    stack: contextlib.ExitStack,
) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    topics = {n: f"bench.pub.{n}.{run_id}" for n in ("publisher", "aiokafka", "perf")}
    for topic in topics.values():
        await create_topic(bootstrap, topic)
    publisher = ServiceProcess(
        "publisher",
        {
            "ROOMCAST_REDIS__URL": redis_url,
            "ROOMCAST_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "ROOMCAST_KAFKA__TOPIC": topics["publisher"],
            "ROOMCAST_LOG__LEVEL": "WARNING",
        },
        workdir / "logs",
    )
    await asyncio.to_thread(publisher.start, 90.0)
    stack.callback(publisher.stop)
    kafka_topic = (bootstrap, topics["publisher"])

    bare = await asyncio.to_thread(BareHttp, workdir)
    stack.callback(bare.stop)
    log(f"bare_http: {plan.singles} requests from {plan.clients} clients")
    results["bare_http"] = await _http_scenario(
        "bare_http",
        bare.port,
        bare.pid,
        single_requests(run_id + "-h", plan.singles, with_id=True),
        single_requests(run_id + "-hw", plan.warmup, with_id=True),
        plan.clients,
        None,
        log,
    )

    for with_id in (True, False):
        tag = "with_id" if with_id else "without_id"
        name = f"single_{tag}"
        results[name] = await _http_scenario(
            name,
            publisher.port,
            publisher.pid,
            single_requests(f"{run_id}-s{tag}", plan.singles, with_id=with_id),
            single_requests(f"{run_id}-w{tag}", plan.warmup, with_id=with_id),
            plan.clients,
            kafka_topic,
            log,
        )
        for size, count in plan.batches.items():
            name = f"batch_{size}_{tag}"
            results[name] = await _http_scenario(
                name,
                publisher.port,
                publisher.pid,
                batch_requests(f"{run_id}-b{size}{tag}", size, count, with_id=with_id),
                [],
                plan.batch_clients,
                kafka_topic,
                log,
            )

    log(f"bare_aiokafka: {plan.bare_records} records")
    try:
        results["bare_aiokafka"] = await asyncio.to_thread(
            bare_aiokafka, bootstrap, topics["aiokafka"], plan.bare_records
        )
        log(f"bare_aiokafka: {results['bare_aiokafka']['acked_per_s']:,.0f} acked/s")
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        errors["bare_aiokafka"] = str(exc)
    log(f"producer_performance: {plan.perf_records} records")
    payloads = workdir / "payloads.txt"
    payloads.write_bytes(
        b"\n".join(record_value(run_id, i) for i in range(min(plan.bare_records, 10_000)))
    )
    try:
        results["producer_performance"] = await asyncio.to_thread(
            producer_performance, bootstrap, topics["perf"], plan.perf_records, payloads
        )
        per_s = results["producer_performance"]["acked_per_s"]
        log(f"producer_performance: {per_s:,.0f} records/s")
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
        errors["producer_performance"] = str(exc)
    return summarize(plan, results, errors)


def _ratios(figures: dict[str, Any], anchors: dict[str, Any]) -> dict[str, float | None]:
    out = {
        f"vs_{name}": ratio(figures.get("acked_per_s"), (anchor or {}).get("acked_per_s"))
        for name, anchor in anchors.items()
    }
    # CPU per message, anchor's over ours: what the ratio would be if both processes got
    # the same share of a core (the scheduler of a busy machine does not promise that).
    ours = figures.get("server_cpu_us_per_message")
    aiokafka = (anchors.get("bare_aiokafka") or {}).get("cpu_us_per_message")
    http = (anchors.get("bare_http") or {}).get("server_cpu_us_per_message")
    out["cpu_vs_bare_aiokafka"] = ratio(aiokafka, ours)
    out["cpu_vs_bare_http"] = ratio(http, ours)
    return out


def at_least(name: str, target: str, measured: float | None, floor: float) -> Verdict:
    if measured is None:
        return Verdict(name, target, None, None, "not measured")
    if measured >= floor:
        return Verdict(name, target, measured, True, f"met at {measured:.2f}x")
    return Verdict(
        name, target, measured, False, f"{measured:.2f}x, short by {floor - measured:.2f}"
    )


def summarize(
    plan: PublisherPlan, scenarios: dict[str, Any], errors: dict[str, str]
) -> dict[str, Any]:
    """Figures, ratios to each anchor and the two targets. No I/O."""
    anchors = {
        name: scenarios.get(name) for name in ("bare_aiokafka", "producer_performance", "bare_http")
    }
    ratios: dict[str, Any] = {}
    verdicts: list[Verdict] = []
    for name, figures in scenarios.items():
        if not (name.startswith("single_") or name.startswith("batch_")):
            continue
        ratios[name] = _ratios(figures, anchors)
        if name.startswith("single_"):
            anchor, what = "vs_bare_http", "one message per request"
        else:
            anchor, what = "vs_bare_aiokafka", f"batches ({name})"
        verdicts.append(
            at_least(
                f"publisher_{name}",
                f"{what} >= {TARGET_RATIO} x {anchor[3:]} in the same run",
                ratios[name][anchor],
                TARGET_RATIO,
            )
        )
        if (
            figures.get("records_landed") is not None
            and figures["records_landed"] < figures["acked"]
        ):
            errors[name] = (
                f"{figures['acked']} acknowledged but {figures['records_landed']} in Kafka"
            )
    return {
        "plan": asdict(plan) | {"batches": {str(k): v for k, v in plan.batches.items()}},
        "scenarios": scenarios,
        "ratios": ratios,
        "targets": explain([v.as_dict() for v in verdicts]),
        "errors": errors,
        "notes": [
            "one 2-core machine: Kafka, Redis, the server and the load generator share it, "
            "so absolute figures move with whatever else runs; compare the ratios",
            "ProducerPerformance sends the same values without keys (it has no key option)",
        ],
    }


def write(results: dict[str, Any], out_dir: Path, plan: str) -> Path:
    """Merge into <plan>.json (latest.json for the full plan) next to the fan-out results."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / ("latest.json" if plan == "full" else f"{plan}.json")
    document: dict[str, Any] = {}
    if path.exists():
        with contextlib.suppress(json.JSONDecodeError):
            document = json.loads(path.read_text())
    document[RESULT_KEY] = results | {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def summary_lines(results: dict[str, Any]) -> Iterator[str]:
    scenarios = results["scenarios"]
    for name, figures in scenarios.items():
        line = f"publisher {name:24} {figures.get('acked_per_s') or 0:>10,.0f} msg/s"
        if name in results["ratios"]:
            ratios = results["ratios"][name]
            line += "  " + "  ".join(
                f"{r:.2f}x {k.removeprefix('vs_')}" if r is not None else f"- {k}"
                for k, r in ratios.items()
            )
        yield line
    yield from verdict_lines(results["targets"])
    for key, error in results["errors"].items():
        yield f"error {key}: {error.splitlines()[0] if error else ''}"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.publisher", description=__doc__)
    parser.add_argument("--plan", choices=sorted(PLANS), default="full")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    def log(line: str) -> None:
        print(f"bench publisher: {line}", file=sys.stderr, flush=True)

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    with tempfile.TemporaryDirectory(prefix="roomcast-bench-publisher-") as tmp:
        results = asyncio.run(measure(PLANS[args.plan], Path(tmp), log))
    path = write(results, args.out, args.plan)
    print("\n".join(summary_lines(results)))
    log(f"wrote {path}")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
