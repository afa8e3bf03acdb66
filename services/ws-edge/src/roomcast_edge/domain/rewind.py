"""`rewind`: where a replay starts so that it sends the latest N matching messages.

The answer is a position vector, and the replay machinery does the rest: from it
to the stream's end, then live, so the seam is the one recovery already keeps exact.
"""

from __future__ import annotations

from collections.abc import Mapping

from roomcast_edge.domain.replay import Selector
from roomcast_edge.domain.replay_index import ReplayIndex

# Entries of one index list walked backwards for a rewind, at most: a topic list
# full of other types costs this much, not the size of the history.
REWIND_SCAN = 20_000


def rewind_since(
    index: ReplayIndex, selector: Selector, n: int, positions: Mapping[int, int]
) -> dict[int, int]:
    """A vector after which exactly the latest `n` publications `selector` matches lie.

    "Latest" is by the time each entered the stream (ties by partition and offset).
    Every partition the index knows is named, so nothing else is replayed.
    """
    since = {p: positions.get(p, -1) for p in index.partitions}
    since.update(positions)
    if n <= 0:
        return since
    keys = selector.keys()
    candidates = {
        p: index.last(p, keys, selector.matches, n, REWIND_SCAN) for p in index.partitions
    }
    merged = [pub for found in candidates.values() for pub in found]
    merged.sort(key=lambda pub: (pub.timestamp, pub.partition, pub.offset))
    taken: dict[int, int] = {}
    for pub in merged[-n:]:
        taken[pub.partition] = taken.get(pub.partition, 0) + 1
    # Per partition the suffix of that many: a replay from there sends exactly them,
    # even where timestamps and offsets disagree on the order.
    for partition, count in taken.items():
        since[partition] = candidates[partition][-count].offset - 1
    return since
