"""Garbage-collector settings for a serving process.

CPython's cyclic collector runs a young-generation pass every 700 new container objects and, now and then, a full
pass over every object in the process. A service's heap after startup is ~150 000 long-lived objects (modules, the
app and its routes, pydantic and SQLAlchemy schemas); requests in flight when a young pass runs get promoted and die
old, which triggers full passes. Measured under the submit benchmark: ~1 400 young and ~8 full passes per 9 000
responses, about 120 µs of CPU per response, a fifth of the process's time. After startup this freezes the heap
(`gc.freeze()`: those objects are never walked again) and raises the young-generation threshold to 20 000: about
10 µs per response.
"""

from __future__ import annotations

import gc

from cx_common.app import Runtime

YOUNG_THRESHOLD = 20_000


async def tune_gc(runtime: Runtime) -> None:
    if not getattr(runtime.settings, "gc_tuning", False):
        return
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(max(YOUNG_THRESHOLD, gc.get_threshold()[0]), older, oldest)
