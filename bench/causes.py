"""Why a target is missed, as far as measurement has found: written beside its verdict.

A verdict says how far a figure is from its target; the cause comes from profiles
and runs logged in bench/README.md (the section each cause names says how it was
found). A target that is met carries no cause, and one without a known cause says so.
"""

from __future__ import annotations

from typing import Any

CAUSES: dict[str, str] = {
    "p99_at_50k_deliveries_per_s": (
        "one send() per client per message: on this machine a bare loop of socket sends "
        "to 10 000 loopback sockets takes ~100 ms, so one core cannot reach the last of "
        "10 000 clients sooner; the edge's own receive-to-fan-out stays <= 25 ms. Several "
        "edge processes on a machine with spare cores would (README: optimisations log)"
    ),
    "handshake_cpu_vs_centrifugo": (
        "per-handshake work with no single hot spot left (py-spy, 3 000-client storms): "
        "uvloop's own 24 %, aiohttp's per-request machinery ~25 % (request task, HTTP "
        "parse, request and URL objects, routing), the one write 7.7 %, the JWT check 7 %, "
        "the batched revocation lookup 5 %; answering /ws without aiohttp's request "
        "objects is the next step, not taken (README: optimisations log)"
    ),
    "ticks_p99_vs_centrifugo": (
        "the edge routes a whole fetched batch in one loop turn, so a batch's last "
        "records wait for its first ones' fan-out; routing in slices cost more writes "
        "and fell behind (README: optimisations log). The step's run-queue wait "
        "(server_runqueue_wait_ms) shows how much of the tail was the shared cores"
    ),
    "presence_handshakes_vs_off": (
        "each presence round trip costs the edge ~0.5 ms of CPU on this machine "
        "(pipeline, socket, wake-up) whatever it carries: batches of 20 ms bound it, the "
        "rest is the per-change bookkeeping (README: roomcast variants)"
    ),
    "publisher_single_with_id": (
        "per-request Python work with no hot spot over ~3 %: the answer's socket write "
        "(~25 %), aiohttp's request handling (~15 %), the aiokafka sender (~6 %); the "
        "message_id adds a Redis claim and its suspension (README: Publisher)"
    ),
    "publisher_single_without_id": (
        "per-request Python work with no hot spot over ~3 %: the answer's socket write "
        "(~25 %), aiohttp's request handling (~15 %), the aiokafka sender (~6 %) "
        "(README: Publisher)"
    ),
    "publisher_batch_100_with_id": (
        "the Redis claim of every message_id before the produce: redis-py encoding and "
        "parsing in Python and one more suspension per request (README: Publisher)"
    ),
    "publisher_batch_1000_with_id": (
        "the Redis claim of every message_id before the produce: redis-py encoding and "
        "parsing in Python and one more suspension per request (README: Publisher)"
    ),
    "staggered_expiry_burst_rate": (
        "wall-clock rates of one short burst swing up to 2x between identical servers on "
        "this machine's shared cores; the CPU per delivery is the figure that shows what "
        "the expiry wheel costs (README: roomcast variants)"
    ),
}
UNKNOWN = "no cause found yet"


def explain(verdicts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The verdicts, each missed one with its `why`."""
    return [
        v | {"why": CAUSES.get(str(v["name"]), UNKNOWN)} if v.get("met") is False else v
        for v in verdicts
    ]
