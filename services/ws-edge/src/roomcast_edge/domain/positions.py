"""Stream position vectors: "0:41,1:-1,2:17" — per partition, the offset last seen.

A partition missing from a vector counts as -1 (nothing seen). Positions are Kafka
partition/offset pairs, so any edge reading the same topic understands them.
"""

from __future__ import annotations

from collections.abc import Mapping

# A vector names each partition once; far more entries than any topic has is an attack.
MAX_ENTRIES = 4096
MAX_LENGTH = 64 * 1024


class PositionError(ValueError):
    """A position vector that cannot be read; the message says why."""


def parse_vector(text: str) -> dict[int, int]:
    """{partition: last offset seen} from "p:o,p:o"; an empty text is the empty vector."""
    if len(text) > MAX_LENGTH:
        raise PositionError("position vector is too long")
    entries: dict[int, int] = {}
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        partition_text, sep, offset_text = part.partition(":")
        if not sep:
            raise PositionError(f"position {part!r} is not partition:offset")
        try:
            partition, offset = int(partition_text), int(offset_text)
        except ValueError:
            raise PositionError(f"position {part!r} is not partition:offset") from None
        if partition < 0 or offset < -1:
            raise PositionError(f"position {part!r} is out of range")
        if partition in entries:
            raise PositionError(f"partition {partition} appears twice")
        entries[partition] = offset
        if len(entries) > MAX_ENTRIES:
            raise PositionError("position vector has too many partitions")
    return entries


def format_vector(entries: Mapping[int, int]) -> str:
    return ",".join(f"{p}:{o}" for p, o in sorted(entries.items()))


def format_position(partition: int, offset: int) -> str:
    return f"{partition}:{offset}"
