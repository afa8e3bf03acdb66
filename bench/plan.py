"""How big each benchmark run is. No I/O."""

from __future__ import annotations

from dataclasses import dataclass, replace

from bench.ticks import TicksSpec


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    connections: tuple[int, ...]
    # messages per burst for each connection count (deliveries = C x M)
    burst_messages: dict[int, int]
    # the connection count the sustained sweep runs at, and its rates in messages/s
    sustained_connections: int
    sustained_rates: tuple[float, ...]
    sustained_seconds: float
    workers: int
    publisher_singles: int
    publisher_batches: int
    publisher_batch_size: int
    # the `ticks` scenario (many topics, a few per client), and the servers it runs for
    # (None: every server that delivers messages)
    ticks: TicksSpec | None = None
    ticks_servers: tuple[str, ...] | None = None
    # connection counts at which only `roomcast` and `roomcast_staggered` run (handshakes,
    # idle memory, burst): many connections, each token expiring at a second of its own
    expiry_connections: tuple[int, ...] = ()

    def within(self, max_connections: int) -> Plan:
        """The same plan with connection counts the open-file limit can hold."""
        kept = tuple(c for c in self.connections if c <= max_connections)
        if not kept:
            kept = (max_connections,)
        sustained = min(self.sustained_connections, max(kept))
        messages = {c: self.burst_messages.get(c, 50) for c in kept}
        # the largest count that fits stands in for one that does not
        expiry: dict[int, int] = {}
        for c in self.expiry_connections:
            fitted = min(c, max_connections)
            if fitted not in kept:
                expiry[fitted] = self.burst_messages.get(c, 20)
        messages.update(expiry)
        return Plan(
            name=self.name,
            connections=kept,
            burst_messages=messages,
            sustained_connections=sustained,
            sustained_rates=self.sustained_rates,
            sustained_seconds=self.sustained_seconds,
            workers=self.workers,
            publisher_singles=self.publisher_singles,
            publisher_batches=self.publisher_batches,
            publisher_batch_size=self.publisher_batch_size,
            ticks=None
            if self.ticks is None
            else replace(self.ticks, clients=min(self.ticks.clients, max_connections)),
            ticks_servers=self.ticks_servers,
            expiry_connections=tuple(expiry),
        )


FULL = Plan(
    name="full",
    connections=(1000, 5000, 10000),
    burst_messages={1000: 200, 5000: 100, 10000: 50, 20000: 20},
    sustained_connections=10000,
    # x 10 000 connections: 10k, 20k, 50k (the target) and 100k deliveries/s
    sustained_rates=(1.0, 2.0, 5.0, 10.0),
    sustained_seconds=10.0,
    workers=2,
    publisher_singles=2000,
    publisher_batches=20,
    publisher_batch_size=500,
    # 1 000 topics x 4 types, 5 000 clients x 5 pairs; the feed rises until a server falls
    # behind (or the driver cannot offer more: then the ceiling is a lower bound)
    ticks=TicksSpec(
        topics=1000,
        clients=5000,
        per_client=5,
        rates=(2000, 5000, 10000, 20000, 30000, 40000, 50000, 60000, 80000),
        step_seconds=5.0,
        warmup_seconds=2.0,
    ),
    # the token-refresh check: 20 000 connections (or as many as the open files allow)
    expiry_connections=(20000,),
)

QUICK = Plan(
    name="quick",
    connections=(400,),
    burst_messages={400: 250},
    sustained_connections=400,
    # x 400 connections: 10k and 50k deliveries/s
    sustained_rates=(25.0, 125.0),
    sustained_seconds=4.0,
    workers=2,
    publisher_singles=500,
    publisher_batches=5,
    publisher_batch_size=200,
    ticks=TicksSpec(
        topics=1000,
        clients=1000,
        per_client=5,
        rates=(2000, 5000, 10000),
        step_seconds=3.0,
        warmup_seconds=2.0,
    ),
    ticks_servers=("roomcast", "roomcast_redis", "centrifugo"),
)

SMOKE = Plan(
    name="smoke",
    connections=(20,),
    burst_messages={20: 5},
    sustained_connections=20,
    sustained_rates=(10.0,),
    sustained_seconds=1.0,
    workers=2,
    publisher_singles=10,
    publisher_batches=2,
    publisher_batch_size=5,
    ticks=TicksSpec(
        topics=10, clients=20, per_client=2, rates=(50,), step_seconds=1.0, warmup_seconds=0.5
    ),
)

PLANS = {plan.name: plan for plan in (FULL, QUICK, SMOKE)}

# Sockets the driver and brokers need besides the clients' and the server's.
FD_HEADROOM = 500


def max_connections(nofile_limit: int) -> int:
    """Clients and server run in different processes, so each needs C sockets of its own."""
    return max(1, nofile_limit - FD_HEADROOM)
