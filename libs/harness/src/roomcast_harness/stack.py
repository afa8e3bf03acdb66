"""The whole local stack in the foreground: Redis, Kafka, auth, publisher, edge(s).

Logs of every process are interleaved on stdout with a name prefix; Ctrl-C (or
SIGTERM) stops everything that was started, in reverse order. The services listen on
loopback unless told otherwise: they run with the development JWT secret.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from roomcast_harness.jaeger import JaegerServer
from roomcast_harness.kafka_broker import KafkaBroker
from roomcast_harness.procs import port_free
from roomcast_harness.redis_server import RedisServer
from roomcast_harness.services import PORT_SETTINGS, ServiceProcess

DEMO_ORIGINS = "http://localhost:8081,http://127.0.0.1:8081"
# What the banner shows instead of a Kafka address when the bus is Redis Streams.
REDIS_BUS = "none (the bus is Redis Streams on the redis above)"


@dataclass(frozen=True)
class StackOptions:
    workdir: Path
    edges: int = 1
    auth_port: int = 8080
    edge_port: int = 8081
    publisher_port: int = 8082
    # "jaeger": run Jaeger too and send every service's spans to it
    tracing: str = ""
    # "redis": the bus is Redis Streams (Redis runs with AOF); no Kafka is started
    bus: str = "kafka"
    # the address every service listens on (ROOMCAST_<SERVICE>__HOST still wins)
    host: str = "127.0.0.1"
    # "shared": the edges split the bus's partitions (ROOMCAST_EDGE__INGEST); "": as set
    ingest: str = ""


class _LogFollower(threading.Thread):
    """Copies new lines of one log file to stdout with a prefix."""

    def __init__(self, name: str, path: Path, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self._name = name
        self._path = path
        self._stopping = stop

    def run(self) -> None:
        while not self._path.exists() and not self._stopping.is_set():
            time.sleep(0.1)
        if not self._path.exists():
            return
        with self._path.open(errors="replace") as log:
            while True:
                line = log.readline()
                if line:
                    sys.stdout.write(f"{self._name:<10}| {line}")
                    sys.stdout.flush()
                elif self._stopping.is_set():
                    return  # only once the log is read to its end: last words count
                else:
                    time.sleep(0.1)


def _banner(
    auth: str,
    edges: list[str],
    publisher: str,
    redis_url: str,
    kafka: str,
    trace_ui: str | None = None,
    exposed: str = "",
) -> str:
    edge = edges[0].replace("127.0.0.1", "localhost")
    ws = edge.replace("http://", "ws://")
    tracing = (
        f"\n  traces      {trace_ui}   (a small trace view over Jaeger's query API)"
        if trace_ui
        else ""
    )
    warning = (
        f"\nWARNING: listening on {exposed} with the development JWT secret: anyone who"
        " reaches these ports can get tokens. Set ROOMCAST_JWT__SECRET.\n"
        if exposed
        else ""
    )
    return f"""
roomcast is up.{warning}
  demo page   {edge}/demo/
  auth        {auth}          (POST /v1/tokens, GET /get/token)
  publisher   {publisher}          (POST /v1/messages)
  ws-edge     {", ".join(edges)}   ({ws}/ws?token=…&roomIds=…)
  redis       {redis_url}
  kafka       {kafka}{tracing}

Publish a message:
  curl -s -X POST {publisher}/v1/messages -H 'Content-Type: application/json' \\
       -d '{{"topic": "order", "type": "event", "payload": {{"content": "hello"}}}}'

Press Ctrl-C to stop everything.
"""


def service_env(
    environ: Mapping[str, str], redis_url: str, bootstrap: str, host: str = "127.0.0.1"
) -> dict[str, str]:
    """What every service gets: each ROOMCAST_* variable of our own environment (so the
    README's settings work with `make run`), the infrastructure this stack runs, and the
    local-demo defaults unless the caller chose otherwise."""
    return {
        "ROOMCAST_LOG__FORMAT": "text",
        "ROOMCAST_AUTH__CORS_ORIGINS": DEMO_ORIGINS,
        "ROOMCAST_PUBLISHER__CORS_ORIGINS": DEMO_ORIGINS,
        **{name.replace("__PORT", "__HOST"): host for name in PORT_SETTINGS.values()},
        **{name: value for name, value in environ.items() if name.startswith("ROOMCAST_")},
        "ROOMCAST_REDIS__URL": redis_url,
        "ROOMCAST_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
    }


def tracing_env(jaeger: JaegerServer) -> dict[str, str]:
    """Spans to this Jaeger, and pushes that carry their trace id for the demo's links."""
    return {
        **jaeger.otel_env(),
        "ROOMCAST_EDGE__TRACE_ID_IN_META": "true",
        "ROOMCAST_EDGE__TRACE_UI_URL": jaeger.ui_url,
    }


def _port_setting(name: str, default: int) -> int:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise RuntimeError(f"{name} must be a port number, got {value!r}") from None


def _reach(host: str) -> str:
    """Where the harness calls a service listening on host."""
    return "127.0.0.1" if host in ("0.0.0.0", "") else host


def _loopback(host: str) -> bool:
    return host == "localhost" or host.startswith("127.") or host == "::1"


def busy_port_line(plan: list[tuple[str, str, int]], hosts: Mapping[str, str]) -> str | None:
    """One line naming the first planned port another process holds, and its setting."""
    for service, name, port in plan:
        if not port_free(hosts[service], port):
            setting = PORT_SETTINGS[service]
            extra = " (a second edge takes that port + 2)" if name != service else ""
            other = port + 10000 if port < 55000 else port - 10000
            return (
                f"port {port} ({name}) is already in use on {hosts[service]}; "
                f"set {setting} to another port{extra}, e.g. {setting}={other} make run"
            )
    return None


def run_stack(options: StackOptions) -> int:
    stopping = threading.Event()

    def on_signal(*_: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        auth_port = _port_setting("ROOMCAST_AUTH__PORT", options.auth_port)
        edge_port = _port_setting("ROOMCAST_EDGE__PORT", options.edge_port)
        publisher_port = _port_setting("ROOMCAST_PUBLISHER__PORT", options.publisher_port)
    except RuntimeError as exc:
        print(f"roomcast-harness: {exc}", file=sys.stderr)
        return 1
    plan = [
        ("auth", "auth", auth_port),
        ("publisher", "publisher", publisher_port),
    ] + [
        # 8081, then 8083, 8084, ...: 8082 is the publisher's.
        ("edge", "edge" if i == 0 else f"edge-{i + 1}", edge_port + (1 + i if i else 0))
        for i in range(options.edges)
    ]
    hosts = {
        service: os.environ.get(setting.replace("__PORT", "__HOST")) or options.host
        for service, setting in PORT_SETTINGS.items()
    }
    # Before Redis and Kafka start: a busy port is the commonest first-run failure.
    busy = busy_port_line(plan, hosts)
    if busy:
        print(f"roomcast-harness: {busy}", file=sys.stderr)
        return 1
    workdir = options.workdir
    on_redis = options.bus == "redis"
    redis = (
        None
        if os.environ.get("ROOMCAST_REDIS__URL")
        else RedisServer(workdir / "redis", appendonly=on_redis)
    )
    kafka = (
        None
        if on_redis or os.environ.get("ROOMCAST_KAFKA__BOOTSTRAP_SERVERS")
        else KafkaBroker(workdir / "kafka")
    )
    jaeger = JaegerServer(workdir / "jaeger", standard_ports=True) if options.tracing else None
    services: list[ServiceProcess] = []
    followers: list[_LogFollower] = []
    # Followers outlive the services, so each one's last lines are shown too.
    logs_done = threading.Event()
    try:
        if redis:
            print(f"starting redis on port {redis.port}", flush=True)
            redis.start()
        if kafka:
            print(f"starting kafka on port {kafka.port}", flush=True)
            kafka.start()
        if jaeger:
            print(f"starting jaeger on port {jaeger.ports['ui']}", flush=True)
            jaeger.start()
        redis_url = redis.url if redis else os.environ["ROOMCAST_REDIS__URL"]
        if on_redis:
            bootstrap = REDIS_BUS
        else:
            bootstrap = (
                kafka.bootstrap_servers
                if kafka
                else os.environ["ROOMCAST_KAFKA__BOOTSTRAP_SERVERS"]
            )
        env = service_env(os.environ, redis_url, bootstrap, options.host)
        if on_redis:
            env = {**env, "ROOMCAST_BUS__KIND": "redis"}
            env.pop("ROOMCAST_KAFKA__BOOTSTRAP_SERVERS")
        if options.ingest:
            env = {**env, "ROOMCAST_EDGE__INGEST": options.ingest}
        if jaeger:
            # The caller's own ROOMCAST_* choices still win over these.
            env = {**tracing_env(jaeger), **env}
        for service, name, port in plan:
            proc = ServiceProcess(
                service, env, workdir / "logs", port=port, name=name, host=_reach(hosts[service])
            )
            follower = _LogFollower(name, proc.log_path, logs_done)
            follower.start()
            followers.append(follower)
            print(f"starting {name} on {hosts[service]}:{port}", flush=True)
            proc.launch()
            services.append(proc)
            try:
                proc.wait_ready(timeout=120)
            except RuntimeError:
                # Its log is on screen already (the follower copies it): no second copy.
                print(f"roomcast-harness: {name} did not start; see its log above", file=sys.stderr)
                return 1
        edges = [p.url for p in services if p.service == "edge"]
        auth = next(p.url for p in services if p.service == "auth")
        publisher = next(p.url for p in services if p.service == "publisher")
        trace_ui = jaeger.ui_url if jaeger else None
        exposed = ", ".join(sorted({h for h in hosts.values() if not _loopback(h)}))
        if "ROOMCAST_JWT__SECRET" in os.environ:
            exposed = ""
        banner = _banner(auth, edges, publisher, redis_url, bootstrap, trace_ui, exposed)
        print(banner, flush=True)
        while not stopping.is_set():
            for proc in services:
                if proc.exited:
                    print(f"{proc.name} exited unexpectedly; stopping", flush=True)
                    stopping.set()
            stopping.wait(0.5)
        return 0
    except (RuntimeError, TimeoutError) as exc:
        print(f"roomcast-harness: {exc}", file=sys.stderr)
        return 1
    finally:
        stopping.set()
        print("stopping…", flush=True)
        for proc in reversed(services):
            proc.stop()
        if kafka:
            kafka.stop()
        if redis:
            redis.stop()
        if jaeger:
            jaeger.stop()
        logs_done.set()
        for follower in followers:
            follower.join(timeout=5)
        print("stopped.", flush=True)
