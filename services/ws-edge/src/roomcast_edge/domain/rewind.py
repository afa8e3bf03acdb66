"""`rewind`: where a replay starts so that it sends the latest N matching messages.

The answer is a position vector, and the replay machinery does the rest: from it
to the stream's end, then live, so the seam is the one recovery already keeps exact.
The candidates are the history's latest matches and, when it holds fewer than N,
the latest ones the bus still holds before it (`older`, found by a search of the
bus's log, see deep_recovery).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from roomcast_edge.domain.deep_replay import Found
from roomcast_edge.domain.replay import Selector
from roomcast_edge.domain.replay_index import ReplayIndex

# Entries of one index list walked backwards for a rewind, at most: a list holding
# other types or old rooms' messages too costs this much, not the size of the history.
REWIND_SCAN = 20_000


def rewind_since(
    index: ReplayIndex,
    selector: Selector,
    n: int,
    positions: Mapping[int, int],
    older: Mapping[int, Sequence[Found]] | None = None,
) -> dict[int, int]:
    """A vector after which exactly the latest `n` publications `selector` matches
    up to `positions` lie (what came after is sent anyway, as live messages).

    "Latest" is by the time each entered the stream (ties by partition and offset).
    `older`: per partition, matching records before the history, in offset order.
    Every partition the index knows is named, so nothing else is replayed.
    """
    since = {p: positions.get(p, -1) for p in index.partitions}
    since.update(positions)
    if n <= 0:
        return since
    keys = selector.keys()
    candidates: dict[int, list[Found]] = {}
    for partition in {*index.partitions, *(older or {})}:
        upto = since.get(partition, -1)
        found = [c for c in (older or {}).get(partition, ()) if c[1] <= upto]
        # The index may still hold a few the search read on the bus: never twice.
        last = found[-1][1] if found else -1
        kept = index.last(partition, keys, selector.matches, n, REWIND_SCAN, upto)
        found.extend((pub.timestamp, pub.offset) for pub in kept if pub.offset > last)
        candidates[partition] = found[-n:]
    merged = [(ts, p, offset) for p, found in candidates.items() for ts, offset in found]
    merged.sort()
    taken: dict[int, int] = {}
    for _, partition, _ in merged[-n:]:
        taken[partition] = taken.get(partition, 0) + 1
    # Per partition the suffix of that many: a replay from there sends exactly them,
    # even where timestamps and offsets disagree on the order.
    for partition, count in taken.items():
        since[partition] = candidates[partition][-count][1] - 1
    return since


def fewer_than(index: ReplayIndex, selector: Selector, n: int) -> bool:
    """Whether the history holds fewer than `n` publications `selector` matches."""
    keys = selector.keys()
    total = 0
    for partition in index.partitions:
        total += len(index.last(partition, keys, selector.matches, n, REWIND_SCAN))
        if total >= n:
            return False
    return True
