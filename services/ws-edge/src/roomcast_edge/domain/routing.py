"""Shared ingest's route: which channel a message travels on, and how it is written.

Every message goes on exactly one channel, chosen by the key its replay index list
uses: its room's channel when it has a room, else its topic's, else the broadcast
channel every edge keeps. A receiver filters a channel's messages by topic and type
as the hub does, so no message ever reaches an edge twice through two channels.

A routed payload is one kind byte, then either a batch of publications (each its
position, timestamps, address and the push frame built once by the reading edge) or
a watermark: per partition, the offset up to which the reading edge has routed
everything (sent on the broadcast channel, after the messages it covers).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from roomcast_edge.domain.publication import Publication
from roomcast_edge.domain.replay_index import BROADCAST, Address, address_of

BATCH = b"M"
WATERMARK = b"W"

# partition, offset, timestamp, receive epoch (NaN: none), then 3 string lengths
# (-1: absent) and the frame's length.
_HEAD = struct.Struct("<IqddiiiI")
# partition count of the topic, then (partition, offset) pairs.
_COUNT = struct.Struct("<I")
_MARK = struct.Struct("<Iq")


class RouteError(ValueError):
    """A routed payload that is not in this format."""


def channel_prefix(stream: str) -> str:
    """Every channel of one deployment's stream starts so (the stream name keeps two
    deployments sharing a Redis apart; no braces, so channels spread over a cluster)."""
    return f"roomcast.route.{stream}."


def channel_of(prefix: str, key: Address) -> str:
    kind, name = key
    if key == BROADCAST:
        return prefix + "b"
    return f"{prefix}{'r' if kind == 'room' else 't'}.{name}"


def key_of_address(topic: str | None, room: str | None) -> Address:
    if room is not None:
        return ("room", room)
    if topic is not None:
        return ("topic", topic)
    return BROADCAST


@dataclass(frozen=True, slots=True)
class Routed:
    """A publication as a receiver gets it, with its publisher's receive time."""

    publication: Publication
    receive_epoch: float | None


@dataclass(frozen=True, slots=True)
class Watermark:
    """The reading edge routed every record of these partitions up to these offsets."""

    partitions: int  # the topic's partition count as the reading edge sees it
    routed: dict[int, int]


def channel_runs(prefix: str, partition_items: Iterable[Routed]) -> Iterator[tuple[str, bytes]]:
    """One partition's publications, in offset order, as (channel, payload) to send in
    that order: consecutive ones of a channel share a payload, so a receiver, which
    keeps each offset once in the order they arrive, sees the partition in order."""
    channel, run = "", list[Routed]()
    for item in partition_items:
        here = channel_of(prefix, address_of(item.publication))
        if here != channel and run:
            yield channel, encode_batch(run)
            run = []
        channel = here
        run.append(item)
    if run:
        yield channel, encode_batch(run)


def _text(value: str | None) -> bytes:
    return b"" if value is None else value.encode()


def encode_batch(items: Iterable[Routed]) -> bytes:
    parts = [BATCH]
    for item in items:
        p = item.publication
        topic, type_, room = _text(p.topic), _text(p.type), _text(p.room)
        parts.append(
            _HEAD.pack(
                p.partition,
                p.offset,
                p.timestamp,
                math.nan if item.receive_epoch is None else item.receive_epoch,
                -1 if p.topic is None else len(topic),
                -1 if p.type is None else len(type_),
                -1 if p.room is None else len(room),
                len(p.frame),
            )
        )
        parts += (topic, type_, room, p.frame)
    return b"".join(parts)


def encode_watermark(partitions: int, routed: Mapping[int, int]) -> bytes:
    marks = b"".join(_MARK.pack(p, o) for p, o in sorted(routed.items()))
    return WATERMARK + _COUNT.pack(partitions) + marks


def decode(payload: bytes) -> list[Routed] | Watermark:
    try:
        if payload[:1] == WATERMARK:
            (count,) = _COUNT.unpack_from(payload, 1)
            body = memoryview(payload)[1 + _COUNT.size :]
            if len(body) % _MARK.size:
                raise RouteError("watermark of a wrong length")
            return Watermark(count, dict(_MARK.iter_unpack(body)))
        if payload[:1] == BATCH:
            return list(_batch(payload))
    except (struct.error, UnicodeDecodeError) as exc:
        raise RouteError(f"unreadable routed payload: {exc}") from exc
    raise RouteError("unknown routed payload kind")


def _batch(payload: bytes) -> Iterator[Routed]:
    at, end = 1, len(payload)
    while at < end:
        partition, offset, stamp, epoch, tl, yl, rl, fl = _HEAD.unpack_from(payload, at)
        at += _HEAD.size
        texts: list[str | None] = []
        for length in (tl, yl, rl):
            if length < 0:
                texts.append(None)
                continue
            texts.append(payload[at : at + length].decode())
            at += length
        frame = payload[at : at + fl]
        if len(frame) != fl:
            raise RouteError("routed frame cut short")
        at += fl
        topic, type_, room = texts
        publication = Publication(partition, offset, topic, type_, room, frame, stamp)
        yield Routed(publication, None if math.isnan(epoch) else epoch)
