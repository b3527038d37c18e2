"""Business-time arithmetic: add N working minutes to an instant, honouring weekly working hours, holidays and the
calendar's time zone (wall-clock hours, so DST shifts are handled by zoneinfo)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_DAYS = 3 * 366


@dataclass(frozen=True)
class WorkCalendar:
    timezone: str = "UTC"
    # weekday index (0 = Monday) -> [(start minute, end minute)] in local wall-clock time; end may be 1440
    hours: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    holidays: frozenset[dt.date] = frozenset()
    always_open: bool = False

    @classmethod
    def twenty_four_seven(cls) -> WorkCalendar:
        return cls(always_open=True)


def parse_hhmm(value: str) -> int:
    hours, _, minutes = value.partition(":")
    total = int(hours) * 60 + int(minutes or 0)
    if not 0 <= total <= 1440 or not 0 <= int(minutes or 0) < 60:
        raise ValueError(f"{value!r} is not a time of day (HH:MM, 00:00-24:00)")
    return total


def add_business_minutes(start: dt.datetime, minutes: float, calendar: WorkCalendar) -> dt.datetime:
    """The instant at which `minutes` of working time have elapsed after `start` (aware datetimes)."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    if calendar.always_open:
        return start + dt.timedelta(minutes=minutes)
    if not any(calendar.hours.values()):
        raise ValueError("calendar has no working hours")
    zone = ZoneInfo(calendar.timezone)
    remaining = dt.timedelta(minutes=minutes)
    cursor = start.astimezone(zone)
    day = cursor.date()
    for _ in range(MAX_DAYS):
        if day not in calendar.holidays:
            for begin_min, end_min in sorted(calendar.hours.get(day.weekday(), [])):
                begin = _at(day, begin_min, zone)
                end = _at(day, end_min, zone)
                lo = max(begin, cursor)
                if lo >= end:
                    continue
                available = end - lo
                if remaining <= available:
                    return (lo + remaining).astimezone(dt.UTC)
                remaining -= available
                cursor = end
        day += dt.timedelta(days=1)
    raise ValueError("no working time within three years (check the calendar's hours and holidays)")


def _at(day: dt.date, minute: int, zone: ZoneInfo) -> dt.datetime:
    if minute >= 1440:
        return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=zone)
    return dt.datetime.combine(day, dt.time(minute // 60, minute % 60), tzinfo=zone)
