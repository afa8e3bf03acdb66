"""The garbage collector once a service has started: one cleanup_ctx for every service.

A full (generation 2) collection walks every tracked object and stops the loop
meanwhile. What exists once the app has started (modules, classes, settings, the
clients: tens of thousands of objects) lives as long as the process, yet was walked
again at every full collection: ~20 ms in the edge, ~50 ms in the publisher on this
hardware, one after every large connect storm and every ~0.4 s of CPU under publish
load. Frozen, they are never walked again; reference counting still frees them, only
a cycle among them that dies later would stay (bounded by what existed at startup).

A service whose requests make many short-lived objects may also collect the young
generation less often (`young`): at the default 700 allocations, objects of requests
still in flight are promoted and scanned again and again.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable

from aiohttp import web

CleanupCtx = Callable[[web.Application], AsyncIterator[None]]


def settled_heap(young: int | None = None) -> CleanupCtx:
    """cleanup_ctx entry, appended last: the heap is frozen after every other startup."""

    async def ctx(_: web.Application) -> AsyncIterator[None]:
        thresholds = gc.get_threshold()
        gc.collect()
        gc.freeze()
        if young is not None:
            gc.set_threshold(young, *thresholds[1:])
        yield
        gc.set_threshold(*thresholds)
        gc.unfreeze()

    return ctx
