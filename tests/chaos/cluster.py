"""The chaos lane's deployment: every part a real process, every link a fault away.

Redis (AOF), Kafka, auth, publishers and edges run as the harness starts them.
Toxiproxy sits between each edge and Kafka, each edge and Redis, and the clients and
each edge,
so that one edge's links can be cut, slowed or sliced while the others work.
"""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

from roomcast_harness.kafka_broker import KafkaBroker
from roomcast_harness.procs import free_port
from roomcast_harness.redis_server import RedisServer
from roomcast_harness.services import ServiceProcess
from roomcast_harness.toxiproxy import Proxy, ToxiproxyServer, latency, slicer
from tests.conftest import Infra

WEBHOOK_SECRET = "chaos-webhook-secret"
# Short enough that the lane sees the ghost sweep and 4001s inside its window.
PRESENCE_TTL = 8
REFRESH_GRACE = 2


class ProxiedKafka(KafkaBroker):
    """A broker with one more listener per edge, advertised at that edge's proxy.

    A Kafka client reconnects to the address the broker advertises for the listener
    it reached, so each proxied client needs a listener of its own to stay proxied.
    """

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.extra: list[tuple[str, int, int]] = []  # (listener name, port, advertised port)

    def _properties(self) -> Path:
        path = super()._properties()
        lines = []
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            if key == "listeners":
                value += "".join(f",{n}://127.0.0.1:{p}" for n, p, _ in self.extra)
            elif key == "advertised.listeners":
                value += "".join(f",{n}://127.0.0.1:{a}" for n, _, a in self.extra)
            elif key == "listener.security.protocol.map":
                value += "".join(f",{n}:PLAINTEXT" for n, _, _ in self.extra)
            lines.append(f"{key}={value}" if value else line)
        path.write_text("\n".join(lines) + "\n")
        return path


class Cluster:
    """Start with `start()`, end with `stop()`; faults are its other methods."""

    def __init__(self, workdir: Path, *, edges: int, publishers: int, webhook_url: str) -> None:
        self.workdir = workdir
        self.redis = RedisServer(workdir / "redis", appendonly=True)
        self.kafka = ProxiedKafka(workdir / "kafka")
        self.toxiproxy = ToxiproxyServer(workdir / "toxiproxy")
        self.edge_count = edges
        self.publisher_count = publishers
        self.webhook_url = webhook_url
        self.auth: ServiceProcess | None = None
        self.publishers: list[ServiceProcess] = []
        self.edges: list[ServiceProcess] = []
        self.redis_links: list[Proxy] = []
        self.kafka_links: list[Proxy] = []
        self.client_links: list[Proxy] = []

    def start(self) -> None:
        for part in ("redis", "kafka", "toxiproxy"):
            (self.workdir / part).mkdir(parents=True, exist_ok=True)
        self.redis.start()
        self.toxiproxy.start()
        # The proxies first: the broker must know the ports it advertises to each edge.
        for i in range(self.edge_count):
            upstream = free_port()
            link = self.toxiproxy.proxy(f"edge-{i + 1}-kafka", f"127.0.0.1:{upstream}")
            self.kafka.extra.append((f"EDGE{i + 1}", upstream, link.port))
            self.kafka_links.append(link)
        self.kafka.start()
        infra = Infra(self.redis.url, self.kafka.bootstrap_servers)
        env = infra.env(
            f"roomcast.chaos.{uuid.uuid4().hex[:10]}",
            ROOMCAST_KAFKA__REQUEST_TIMEOUT="4",
            ROOMCAST_EDGE__DRAIN_SECONDS="1",
            ROOMCAST_EDGE__PRESENCE_TTL=str(PRESENCE_TTL),
            ROOMCAST_EDGE__REFRESH_GRACE=str(REFRESH_GRACE),
            ROOMCAST_EDGE__HEARTBEAT_CHECK_INTERVAL="2",
            ROOMCAST_WEBHOOKS__URLS=self.webhook_url,
            ROOMCAST_WEBHOOKS__SECRET=WEBHOOK_SECRET,
        )
        self.auth = ServiceProcess("auth", env, self.workdir, name="auth")
        self.publishers = [
            ServiceProcess("publisher", env, self.workdir, name=f"publisher-{i + 1}")
            for i in range(self.publisher_count)
        ]
        redis_port = self.redis.url.rsplit(":", 1)[1].split("/")[0]
        for i in range(self.edge_count):
            link = self.toxiproxy.proxy(f"edge-{i + 1}-redis", f"127.0.0.1:{redis_port}")
            self.redis_links.append(link)
            edge_env = {
                **env,
                "ROOMCAST_REDIS__URL": f"redis://127.0.0.1:{link.port}/0",
                "ROOMCAST_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{self.kafka_links[i].port}",
            }
            self.edges.append(ServiceProcess("edge", edge_env, self.workdir, name=f"edge-{i + 1}"))
        for proc in self.processes:
            proc.launch()
        for proc in self.processes:
            proc.wait_ready(timeout=120)
        for i, edge in enumerate(self.edges):
            self.client_links.append(
                self.toxiproxy.proxy(f"clients-edge-{i + 1}", f"127.0.0.1:{edge.port}")
            )

    @property
    def processes(self) -> list[ServiceProcess]:
        assert self.auth is not None
        return [self.auth, *self.publishers, *self.edges]

    @property
    def auth_url(self) -> str:
        assert self.auth is not None
        return self.auth.url

    def edge_ws_url(self, edge: int) -> str:
        """An edge's /ws as clients reach it: through its Toxiproxy link."""
        return f"ws://127.0.0.1:{self.client_links[edge].port}/ws"

    def stop(self) -> None:
        for proc in reversed(self.processes if self.auth is not None else []):
            if proc.exited:
                continue
            proc.stop()
        self.toxiproxy.stop()
        self.kafka.stop()
        self.redis.stop()

    # ---- faults: each has a start and an end ---------------------------------

    def kill(self, proc: ServiceProcess) -> None:
        proc.process.kill()  # SIGKILL: no drain, no goodbye
        proc.process.wait(10)

    def revive(self, proc: ServiceProcess) -> None:
        proc.launch()
        proc.wait_ready(timeout=120)

    def pause(self, proc: ServiceProcess) -> None:
        os.killpg(proc.pid, signal.SIGSTOP)

    def resume(self, proc: ServiceProcess) -> None:
        os.killpg(proc.pid, signal.SIGCONT)

    def cut(self, link: Proxy) -> None:
        self.toxiproxy.request("POST", f"/proxies/{link.name}", {"enabled": False})

    def mend(self, link: Proxy) -> None:
        self.toxiproxy.request("POST", f"/proxies/{link.name}", {"enabled": True})
        link.clear()

    def slow(self, link: Proxy) -> None:
        link.add(latency("downstream", 150, 100))
        link.add(latency("upstream", 50, 30))

    def slice(self, link: Proxy) -> None:
        link.add(slicer("downstream", 64, 32, 200))
