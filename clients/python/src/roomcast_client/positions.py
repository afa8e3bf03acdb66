"""Stream position vectors: "0:41,1:-1,2:17" — per partition, the last offset seen."""

from __future__ import annotations


class PositionVector:
    """What a client has seen; kept by replacing each message's partition entry."""

    def __init__(self, entries: dict[int, int] | None = None) -> None:
        self._entries: dict[int, int] = dict(entries or {})

    @classmethod
    def parse(cls, text: str) -> PositionVector:
        entries: dict[int, int] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            partition, _, offset = part.partition(":")
            entries[int(partition)] = int(offset)
        return cls(entries)

    def merge_start(self, text: str) -> None:
        """Adopt the stream end reported at connect for partitions not seen yet."""
        for partition, offset in PositionVector.parse(text)._entries.items():
            self._entries.setdefault(partition, offset)

    def advance(self, position: str) -> None:
        partition, _, offset = position.partition(":")
        p, o = int(partition), int(offset)
        if o > self._entries.get(p, -1):
            self._entries[p] = o

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __str__(self) -> str:
        return ",".join(f"{p}:{o}" for p, o in sorted(self._entries.items()))
