"""What the replay index needs to know of the history, read through its public API."""

from __future__ import annotations

from collections.abc import Mapping

from roomcast_edge.domain.history import History

# Beyond any Kafka offset: "everything of this partition was seen".
_BEYOND = 2**63


def oldest_kept(history: History, partition: int) -> int | None:
    """The offset of the oldest publication `history` holds for `partition` (None: none)."""
    vector = dict.fromkeys(history.partitions, _BEYOND)
    vector[partition] = -1
    first = next(history.after(vector), None)
    return first.offset if first is not None and first.partition == partition else None


def oldest_kept_before(history: History, since: Mapping[int, int]) -> dict[int, int]:
    """`oldest_kept` of the partitions whose history no longer reaches back to `since`.

    Only those need it (a replay starts there instead); the others cost one check each.
    """
    oldest: dict[int, int] = {}
    for partition in history.partitions:
        seen = since.get(partition, -1)
        if history.covers({partition: seen}, [partition]):
            continue
        offset = oldest_kept(history, partition)
        if offset is not None:
            oldest[partition] = offset
    return oldest
