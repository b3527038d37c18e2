"""The service clock: everything that depends on 'now' (SLA deadlines, timers, grouping windows) asks it.

Tests inject a `ManualClock` and advance it instead of sleeping; production uses `SystemClock` (optionally shifted).
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from fastapi import Request


class Clock(Protocol):
    def now(self) -> dt.datetime: ...


class SystemClock:
    def __init__(self, offset_s: float = 0.0) -> None:
        self.offset = dt.timedelta(seconds=offset_s)

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset


class ManualClock:
    """A clock that only moves when told to."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self._now = start or dt.datetime.now(dt.UTC)
        if self._now.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")

    def now(self) -> dt.datetime:
        return self._now

    def set(self, value: dt.datetime) -> None:
        self._now = value

    def advance(self, **delta: float) -> dt.datetime:
        self._now += dt.timedelta(**delta)
        return self._now


async def request_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.runtime.extras["clock"]
    return clock
