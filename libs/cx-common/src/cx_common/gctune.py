"""Garbage-collector settings for a serving process (every service, after its startup hooks).

CPython's cyclic collector runs a young-generation pass every 700 new container objects and, now and then, a full
pass over every object in the process. A service's heap after startup is ~150 000 long-lived objects (modules, the
app and its routes, pydantic and SQLAlchemy schemas); requests in flight when a young pass runs get promoted and die
old, which triggers full passes. Measured on the survey submit benchmark: ~1 400 young and ~8 full passes per 9 000
responses, about 120 µs of CPU per response, a fifth of the process's time. After startup this freezes the heap
(`gc.freeze()`: those objects are never walked again) and raises the young-generation threshold to 20 000: about
10 µs per response. Off with `environment=test` by default: test processes start many apps, and freezing would keep
each test's garbage forever.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000


def tune_gc() -> None:
    gc.collect()
    gc.freeze()
    young, older, oldest = gc.get_threshold()
    gc.set_threshold(max(YOUNG_THRESHOLD, young), older, oldest)
