"""The chaos lane: a seeded fault schedule against a real cluster under steady load,
with every promise checked at the end and a report that replays by its seed.

`run_lane` is what `make chaos` (tests/chaos/__main__.py) and the short lane in
`make test` (test_lane.py) run.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
import websockets
from aiohttp import web

from roomcast_harness.procs import free_port
from tests.chaos.clients import ChaosClient, Fleet, issue_token
from tests.chaos.cluster import PRESENCE_TTL, WEBHOOK_SECRET, Cluster
from tests.chaos.schedule import Fault, plan
from tests.chaos.webhooks import WebhookReceiver
from tests.robustness.ledger import Ledger
from tests.robustness.support import metrics, publish_http, rss_bytes

ROOMS = tuple(f"r{i}" for i in range(10))
HEAVY_ROOM = "heavy"
TOPICS = (("quotes", "tick"), ("quotes", "*"), ("news", "*"), ("quotes", "trade"))
# What the publishers send, drawn in turn: rooms, topics, both, broadcasts (rare).
KINDS: list[tuple[int, dict[str, str]]] = [
    (5, {"room": ""}),
    (3, {"topic": "quotes", "type_": "tick"}),
    (1, {"topic": "quotes", "type_": "trade"}),
    (1, {"topic": "news"}),
    (2, {"room": "", "topic": "quotes", "type_": "tick"}),
    (1, {}),
]
STORM_SHARE = 0.3
STORM_TTL = 3


@dataclass(frozen=True)
class ChaosConfig:
    seconds: float
    seed: int
    clients: int = 300
    edges: int = 3
    publishers: int = 2
    rate: float = 30.0  # publishes per second, all workers together
    token_ttl: int = 900


@dataclass
class Happened:
    fault: Fault
    started: float = 0.0
    ended: float = 0.0
    error: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            **self.fault.as_json(),
            "started": round(self.started, 2),
            "ended": round(self.ended, 2),
            "error": self.error,
        }


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class LaneReport:
    config: ChaosConfig
    schedule: list[Happened] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    ledger_text: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def replay(self) -> str:
        return f"make chaos CHAOS_SEED={self.config.seed} CHAOS_SECONDS={self.config.seconds:g}"

    def as_json(self) -> dict[str, Any]:
        return {
            "seed": self.config.seed,
            "seconds": self.config.seconds,
            "clients": self.config.clients,
            "ok": self.ok,
            "replay": self.replay,
            "checks": [c.as_json() for c in self.checks],
            "figures": self.figures,
            "schedule": [h.as_json() for h in self.schedule],
        }

    def text(self) -> str:
        lines = [
            f"chaos lane: seed {self.config.seed}, {self.config.seconds:g} s, "
            f"{self.config.clients} clients, {len(self.schedule)} faults: "
            + ("PASS" if self.ok else "FAIL"),
            "faults: " + ", ".join(f"{h.fault.kind}@{h.started:.0f}s" for h in self.schedule),
        ]
        lines += [f"  {'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}" for c in self.checks]
        lines += [f"  {k}: {v}" for k, v in self.figures.items()]
        lines.append(f"replay: {self.replay}")
        return "\n".join(lines)


class Lane:
    def __init__(self, config: ChaosConfig, cluster: Cluster, fleet: Fleet) -> None:
        self.config = config
        self.cluster = cluster
        self.fleet = fleet
        self.rng = random.Random(config.seed)
        self.clients: list[ChaosClient] = []
        self.publishes: Counter[int] = Counter()
        self.started = 0.0
        self.stop_publishing = asyncio.Event()
        self.stalled: list[Any] = []
        self.heavy: asyncio.Task[None] | None = None

    def make_clients(self) -> None:
        for i in range(self.config.clients):
            rooms = tuple(sorted(self.rng.sample(ROOMS, self.rng.choice((0, 1, 1, 2)))))
            subscriptions = tuple(self.rng.sample(TOPICS, self.rng.choice((0, 0, 1, 2))))
            user = f"user-{i // 3}"  # three devices per user: member events are per user
            seed = self.rng.randrange(1 << 30)
            client = ChaosClient(self.fleet, f"c{i}", user, rooms, subscriptions, seed)
            self.clients.append(client)

    # ---- load -------------------------------------------------------------------

    async def publish(self, worker: int, workers: int) -> None:
        rng = random.Random(self.config.seed * 1000 + worker)
        kinds = [k for _, k in KINDS]
        weights = [w for w, _ in KINDS]
        interval = workers / self.config.rate
        urls = [p.url for p in self.cluster.publishers]
        while not self.stop_publishing.is_set():
            kind = dict(rng.choices(kinds, weights)[0])
            if "room" in kind:
                kind["room"] = rng.choice(ROOMS)
            url = urls[rng.randrange(len(urls))]
            status, _ = await publish_http(self.fleet.http, url, self.fleet.ledger, **kind)
            self.publishes[status] += 1
            await asyncio.sleep(rng.uniform(0.5, 1.5) * interval)

    # ---- faults -----------------------------------------------------------------

    async def run_schedule(self, faults: list[Fault], report: LaneReport) -> None:
        tasks = []
        for fault in faults:
            delay = self.started + fault.at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            happened = Happened(fault)
            report.schedule.append(happened)
            tasks.append(asyncio.create_task(self._inflict(happened)))
        await asyncio.gather(*tasks)

    async def _inflict(self, happened: Happened) -> None:
        fault = happened.fault
        happened.started = time.monotonic() - self.started
        try:
            begin, end = self._actions(fault)
            await asyncio.to_thread(begin) if begin is not None else None
            if fault.kind == "token_storm":
                await self._token_storm()
            elif fault.kind == "stall_clients":
                await self._stall(fault.target)
            await asyncio.sleep(fault.duration)
            await asyncio.to_thread(end) if end is not None else None
            if fault.kind == "stall_clients":
                await self._unstall()
        except Exception as exc:  # reported, and the lane's checks still run
            happened.error = repr(exc)
        happened.ended = time.monotonic() - self.started

    def _actions(self, fault: Fault) -> tuple[Any, Any]:
        c, t = self.cluster, fault.target
        table: dict[str, tuple[Any, Any]] = {
            "kill_edge": (lambda: c.kill(c.edges[t]), lambda: c.revive(c.edges[t])),
            "kill_publisher": (
                lambda: c.kill(c.publishers[t]),
                lambda: c.revive(c.publishers[t]),
            ),
            "kill_auth": (lambda: c.kill(_auth(c)), lambda: c.revive(_auth(c))),
            "restart_kafka": (c.kafka.stop, c.kafka.start),
            "restart_redis": (c.redis.stop, c.redis.start),
            "cut_redis_link": (lambda: c.cut(c.redis_links[t]), lambda: c.mend(c.redis_links[t])),
            "cut_kafka_link": (lambda: c.cut(c.kafka_links[t]), lambda: c.mend(c.kafka_links[t])),
            "slow_kafka_link": (
                lambda: c.slow(c.kafka_links[t]),
                lambda: c.kafka_links[t].clear(),
            ),
            "slow_client_link": (
                lambda: c.slow(c.client_links[t]),
                lambda: c.client_links[t].clear(),
            ),
            "slice_client_link": (
                lambda: c.slice(c.client_links[t]),
                lambda: c.client_links[t].clear(),
            ),
            "pause_edge": (lambda: c.pause(c.edges[t]), lambda: c.resume(c.edges[t])),
        }
        return table.get(fault.kind, (None, None))

    async def _token_storm(self) -> None:
        chosen = self.rng.sample(self.clients, max(1, int(len(self.clients) * STORM_SHARE)))
        await asyncio.gather(*(client.expire_soon(STORM_TTL) for client in chosen))

    async def _stall(self, edge: int) -> None:
        """A few clients that stop reading while the heavy room fills their buffers."""
        for i in range(3):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            with contextlib.suppress(Exception):
                sock.connect(("127.0.0.1", self.cluster.edges[edge].port))
                token = await issue_token(self.fleet, f"staller-{i}", "stallers", 120)
                ws = await websockets.connect(
                    f"ws://127.0.0.1:{self.cluster.edges[edge].port}/ws?token={token}"
                    f"&roomIds={HEAVY_ROOM}",
                    sock=sock,
                    max_queue=1,
                    close_timeout=0.5,
                    ping_interval=None,
                    open_timeout=10,
                )
                self.stalled.append(ws)
        self.heavy = asyncio.create_task(self._fill_heavy_room())

    async def _fill_heavy_room(self) -> None:
        """Large messages for the stalled clients' room: 4 MB, past their outbound limit."""
        body = {"room": HEAVY_ROOM, "payload": "h" * 32768}
        url = self.cluster.publishers[0].url + "/v1/messages"
        for _ in range(120):
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self.fleet.http.post(url, json=body):
                    pass

    async def _unstall(self) -> None:
        if self.heavy is not None:
            self.heavy.cancel()
            await asyncio.gather(self.heavy, return_exceptions=True)
        stalled, self.stalled = self.stalled, []
        for ws in stalled:
            with contextlib.suppress(Exception):
                await ws.close()


def _timeline(events: list[tuple[float, int, str]]) -> dict[str, dict[str, int]]:
    """What clients met, per 10 s of the lane and per edge: closes by code, recoveries."""
    buckets: dict[str, Counter[str]] = {}
    for at, edge, what in events:
        key = f"{int(at // 10) * 10:>4}s"
        buckets.setdefault(key, Counter())[f"edge-{edge + 1} {what}"] += 1
    return {k: dict(v) for k, v in sorted(buckets.items())}


def _auth(cluster: Cluster) -> Any:
    assert cluster.auth is not None
    return cluster.auth


async def _wait(probe: Any, timeout: float) -> Any:
    """Poll an async probe returning (done, value) until done; the last value either way."""
    deadline = time.monotonic() + timeout
    while True:
        done, value = await probe()
        if done or time.monotonic() > deadline:
            return done, value
        await asyncio.sleep(0.5)


async def _check_end(lane: Lane, receiver: WebhookReceiver, report: LaneReport) -> None:
    cluster, fleet = lane.cluster, lane.fleet
    settled = await asyncio.gather(*(c.settle(timeout=90) for c in lane.clients))
    ledger_report = fleet.ledger.check()
    report.ledger_text = ledger_report.text()
    bad = [c for c in ledger_report.clients if not c.ok]
    excused = [c for c in ledger_report.clients if c.ok and c.missing]
    report.checks.append(
        Check(
            "exactly once per entitled client",
            not bad,
            f"{len(ledger_report.clients) - len(bad)}/{len(ledger_report.clients)} clients ok, "
            f"{len(excused)} told recovered: false, {ledger_report.sent} acknowledged; "
            + "; ".join(
                f"{c.name} missing {len(c.missing)} dup {len(c.duplicates)} "
                f"unentitled {len(c.unentitled)} unknown {len(c.unknown)}"
                for c in bad[:5]
            ),
        )
    )
    report.checks.append(
        Check("every client back and caught up", all(settled), f"{sum(settled)}/{len(settled)}")
    )
    unrecovered = [e for e in fleet.events if e[2] == "recovered false"]
    report.checks.append(
        Check(
            "no recovered: false (retention and MAX_REPLAY are out of reach here)",
            not unrecovered,
            f"{len(unrecovered)} times, first at {unrecovered[0][0]} s" if unrecovered else "none",
        )
    )
    errors = [f"{h.fault.kind}: {h.error[:300]}" for h in report.schedule if h.error]
    report.checks.append(
        Check("every fault inflicted and healed (processes restart)", not errors, str(errors))
    )
    report.checks.append(
        Check("order per key", not fleet.reorders, "; ".join(fleet.reorders[:5]) or "none out")
    )
    statuses = dict(sorted(lane.publishes.items()))
    report.checks.append(Check("no 500 from a publisher", 500 not in statuses, str(statuses)))
    report.checks.append(
        Check(
            "close codes from the table only",
            not fleet.unexpected_closes,
            "; ".join(fleet.unexpected_closes[:5]) or str(dict(fleet.closes)),
        )
    )

    fleet.stopping.set()
    await asyncio.gather(*(c.close() for c in lane.clients))

    async def presence_empty() -> tuple[bool, dict[str, int]]:
        counts: dict[str, int] = {}
        url = cluster.publishers[0].url
        for room in ROOMS:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, KeyError):
                async with fleet.http.get(f"{url}/v1/rooms/{room}/presence") as reply:
                    body = await reply.json()
                    counts[room] = int(body["presence"]["connections"])
        return len(counts) == len(ROOMS) and not any(counts.values()), counts

    done, counts = await _wait(presence_empty, PRESENCE_TTL * 3 + 10)
    report.checks.append(Check("presence without ghosts after the TTL", done, str(counts)))

    def connections() -> list[float]:
        return [metrics(edge).get("roomcast_edge_connections", -1) for edge in cluster.edges]

    async def edges_empty() -> tuple[bool, list[float]]:
        seen = await asyncio.to_thread(connections)
        return not any(seen), seen

    done, seen = await _wait(edges_empty, 30)
    report.checks.append(Check("connections back to zero on every edge", done, str(seen)))

    async def webhooks_balanced() -> tuple[bool, dict[str, int]]:
        balance = receiver.balance()
        return not balance, balance

    done, balance = await _wait(webhooks_balanced, 90)
    report.checks.append(
        Check(
            "webhooks: every room vacated, stable ids",
            done and not receiver.changed_bodies and not receiver.bad_signatures,
            f"unbalanced {balance}, changed bodies {receiver.changed_bodies[:3]}, "
            f"bad signatures {receiver.bad_signatures}",
        )
    )

    client = aioredis.from_url(cluster.redis.url)
    try:

        async def presence_keys() -> tuple[bool, int]:
            keys = [k async for k in client.scan_iter(match="roomcast:presence:*", count=500)]
            members = [k for k in keys if not k.endswith(b":edges") and b"notices" not in k]
            return not members, len(members)

        done, left = await _wait(presence_keys, PRESENCE_TTL * 3 + 10)
        report.checks.append(Check("presence keys in Redis back to baseline", done, f"{left}"))
    finally:
        await client.aclose()

    drops = await asyncio.to_thread(
        lambda: [
            metrics(edge).get('roomcast_edge_drops_total{reason="slow_consumer"}', 0.0)
            for edge in cluster.edges
        ]
    )
    rss = await asyncio.to_thread(lambda: [rss_bytes(edge.pid) // 2**20 for edge in cluster.edges])
    report.figures.update(
        {
            "stalled clients cut (4008) since each edge's last start": drops,
            "edge RSS MiB at the end": rss,
            "publishes by status": statuses,
            "acknowledged": ledger_report.sent,
            "uncertain": ledger_report.uncertain,
            "closes by code": dict(sorted(fleet.closes.items())),
            "handshakes refused": dict(fleet.handshake_refusals),
            "sessions": sum(c.sessions for c in lane.clients),
            "tokens issued": fleet.tokens_issued,
            "webhook deliveries": receiver.deliveries,
            "webhook deliveries refused on purpose": receiver.refused,
            "fault errors": [
                h.fault.kind + ": " + h.error[:300] for h in report.schedule if h.error
            ],
            "worst lag of the lane's own timers (s)": round(fleet.worst_timer_lag, 2),
            "closes and recovered: false by edge, per 10 s": _timeline(fleet.events),
        }
    )


async def run_lane(config: ChaosConfig, workdir: Path) -> LaneReport:
    report = LaneReport(config)
    receiver = WebhookReceiver(WEBHOOK_SECRET, config.seed)
    runner = web.AppRunner(receiver.app())
    await runner.setup()
    hook_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", hook_port).start()
    cluster = Cluster(
        workdir,
        edges=config.edges,
        publishers=config.publishers,
        webhook_url=f"http://127.0.0.1:{hook_port}/hook",
    )
    timeout = aiohttp.ClientTimeout(total=20)
    try:
        await asyncio.to_thread(cluster.start)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            urls = [cluster.edge_ws_url(i) for i in range(config.edges)]
            fleet = Fleet(Ledger(), urls, cluster.auth_url, http, config.token_ttl)
            lane = Lane(config, cluster, fleet)
            lane.make_clients()
            running = [asyncio.create_task(c.run()) for c in lane.clients]
            async with asyncio.timeout(120):
                for client in lane.clients:
                    await client.connected.wait()
            lane.started = fleet.started = time.monotonic()
            workers = 6
            publishing = [asyncio.create_task(lane.publish(i, workers)) for i in range(workers)]
            await lane.run_schedule(plan(config.seed, config.seconds), report)
            rest = config.seconds - (time.monotonic() - lane.started)
            await asyncio.sleep(max(0.0, rest))
            lane.stop_publishing.set()
            await asyncio.gather(*publishing)
            await _check_end(lane, receiver, report)
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
    finally:
        await asyncio.to_thread(cluster.stop)
        await runner.cleanup()
    return report
