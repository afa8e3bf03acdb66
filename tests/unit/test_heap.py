"""The startup heap every service freezes out of later full collections."""

from __future__ import annotations

import asyncio
import gc

import pytest
from aiohttp import web

from roomcast_core.heap import settled_heap


async def _cycle(young: int | None, kept: list[dict[str, int]], young_before: int) -> None:
    ctx = settled_heap(young)(web.Application())
    await anext(ctx)
    assert gc.get_freeze_count() >= len(kept)
    # no generation holds them any more: no collection walks them again
    for generation in range(3):
        assert not any(o is kept[0] for o in gc.get_objects(generation=generation))
    assert gc.get_threshold()[0] == (young_before if young is None else young)
    with pytest.raises(StopAsyncIteration):  # the app stopped: the context ends
        await anext(ctx)


@pytest.mark.parametrize("young", [None, 20_000])
def test_the_startup_heap_is_frozen_until_the_app_stops(young: int | None) -> None:
    gc.unfreeze()
    thresholds = gc.get_threshold()
    kept = [{"startup": i} for i in range(1000)]
    try:
        asyncio.run(_cycle(young, kept, thresholds[0]))
        # stopped: everything is as it was
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == thresholds
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
