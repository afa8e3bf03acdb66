"""Read one Prometheus histogram from a /metrics page and estimate its quantiles. No I/O.

Used to split roomcast's publish-to-deliver latency: the edge observes
receive_time -> fan-out (roomcast_edge_publish_to_deliver_seconds); the rest of what
the clients see is the socket write and the client itself.
"""

from __future__ import annotations

import math
import re

_BUCKET = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)_bucket\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)")
_LE = re.compile(r'le="(?P<le>[^"]+)"')


def histogram_buckets(text: str, name: str) -> dict[float, float]:
    """Cumulative count per upper bound (``le``), summed over any other labels."""
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        match = _BUCKET.match(line)
        if match is None or match["name"] != name:
            continue
        le = _LE.search(match["labels"])
        if le is None:
            continue
        bound = math.inf if le["le"] == "+Inf" else float(le["le"])
        buckets[bound] = buckets.get(bound, 0.0) + float(match["value"])
    return buckets


def bucket_delta(after: dict[float, float], before: dict[float, float]) -> dict[float, float]:
    return {bound: count - before.get(bound, 0.0) for bound, count in after.items()}


def quantile_upper_bound(cumulative: dict[float, float], fraction: float) -> float | None:
    """The smallest bucket bound holding `fraction` of the observations (None: none)."""
    if not cumulative:
        return None
    total = cumulative.get(math.inf, max(cumulative.values()))
    if total <= 0:
        return None
    for bound in sorted(cumulative):
        if cumulative[bound] >= fraction * total:
            return bound
    return math.inf
