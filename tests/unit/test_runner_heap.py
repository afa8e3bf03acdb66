"""The startup heap a service may freeze out of later full collections."""

from __future__ import annotations

import asyncio
import gc

from aiohttp import web

from roomcast_core.runner import freeze_heap


def test_freezing_keeps_startup_objects_out_of_full_collections() -> None:
    gc.unfreeze()
    before = gc.get_freeze_count()
    kept = [{"startup": i} for i in range(1000)]
    try:
        asyncio.run(freeze_heap(web.Application()))
        assert gc.get_freeze_count() >= before + len(kept)
        # no generation holds them any more: no collection walks them again
        for generation in range(3):
            assert not any(o is kept[0] for o in gc.get_objects(generation=generation))
    finally:
        gc.unfreeze()
