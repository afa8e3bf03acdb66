"""The chaos lane's fault schedule: a seed in, a list of timed faults out (no I/O).

The same seed and length give the same schedule, so a failing run is replayed by
its seed. Faults overlap on purpose (an edge killed while Kafka restarts), but a
kind of fault never hits the same target twice at once, and every fault ends
before the quiet tail in which the lane lets the system settle and checks it.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

# Seconds at the end with no fault: the system settles before the checks.
QUIET_TAIL = 15.0
# Seconds at the start with no fault: clients connect and the first messages flow.
WARM_UP = 5.0

# kind -> (weight, shortest and longest duration in seconds)
KINDS: dict[str, tuple[int, float, float]] = {
    "kill_edge": (4, 1.0, 4.0),  # SIGKILL, restarted after the duration
    "kill_publisher": (2, 1.0, 3.0),
    "kill_auth": (1, 1.0, 3.0),
    "restart_kafka": (1, 2.0, 6.0),  # stopped, started after the duration
    "restart_redis": (1, 1.0, 3.0),
    "cut_redis_link": (2, 1.0, 5.0),  # one edge's link to Redis is down
    "cut_kafka_link": (2, 1.0, 6.0),  # one edge's link to Kafka is down
    "slow_kafka_link": (1, 2.0, 6.0),  # latency with jitter between one edge and Kafka
    "slow_client_link": (2, 2.0, 6.0),  # latency with jitter between clients and one edge
    "slice_client_link": (2, 2.0, 6.0),  # clients' bytes to one edge in small slices
    "pause_edge": (1, 0.5, 3.0),  # SIGSTOP, then SIGCONT: a partition from everything
    "token_storm": (2, 0.0, 0.0),  # a share of clients' tokens expire together
    "stall_clients": (2, 3.0, 8.0),  # some clients stop reading
}
TARGETS = {
    "kill_edge": 3,
    "kill_publisher": 2,
    "cut_redis_link": 3,
    "cut_kafka_link": 3,
    "slow_kafka_link": 3,
    "slow_client_link": 3,
    "slice_client_link": 3,
    "pause_edge": 3,
}
# Faults of these kinds take the whole shared resource: one at a time.
EXCLUSIVE = {"restart_kafka", "restart_redis", "kill_auth"}
EDGE_DOWN = {"kill_edge", "pause_edge"}


@dataclass(frozen=True, slots=True)
class Fault:
    at: float  # seconds after the lane's start
    kind: str
    target: int  # which edge / publisher (0 when the kind has one target)
    duration: float

    @property
    def until(self) -> float:
        return self.at + self.duration

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def plan(seed: int, seconds: float, faults_per_minute: float = 8.0) -> list[Fault]:
    """The faults of a lane of `seconds`, in start order."""
    rng = random.Random(seed)
    window = seconds - QUIET_TAIL - WARM_UP
    if window <= 0:
        return []
    count = max(1, round(window / 60.0 * faults_per_minute))
    kinds = list(KINDS)
    weights = [KINDS[k][0] for k in kinds]
    faults: list[Fault] = []
    for _ in range(count * 4):  # draws that collide are dropped; enough tries for count
        if len(faults) == count:
            break
        kind = rng.choices(kinds, weights)[0]
        _, shortest, longest = KINDS[kind]
        duration = round(rng.uniform(shortest, longest), 2)
        at = round(WARM_UP + rng.uniform(0.0, window - duration), 2)
        target = rng.randrange(TARGETS.get(kind, 1))
        fault = Fault(at, kind, target, duration)
        if not any(_collide(fault, other) for other in faults):
            faults.append(fault)
    return sorted(faults, key=lambda f: f.at)


def _collide(a: Fault, b: Fault) -> bool:
    # A margin after each fault: a restarted process needs a moment before the next.
    overlap = a.at < b.until + 2.0 and b.at < a.until + 2.0
    if not overlap:
        return False
    if a.kind in EXCLUSIVE and b.kind in EXCLUSIVE:
        return True
    if a.kind in EDGE_DOWN and b.kind in EDGE_DOWN:
        return True  # at most one edge down at a time: its clients move to the others
    return a.kind == b.kind and a.target == b.target
