import datetime as dt
import uuid
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cx_alerts.sla.calendar import WEEKDAYS, parse_hhmm

Priority = Literal["P1", "P2", "P3", "P4"]


class PolicyWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    first_response_minutes: int = Field(ge=1, le=60 * 24 * 90)
    resolution_minutes: int = Field(ge=1, le=60 * 24 * 365)
    escalation_minutes: int | None = Field(
        default=None, ge=1, le=60 * 24 * 90, description="deadline at each escalation level (default: first response)"
    )
    business_hours: bool = Field(default=True, description="count only working time of the org unit's calendar")


class PolicyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    priority: str
    first_response_minutes: int
    resolution_minutes: int
    escalation_minutes: int
    business_hours: bool
    version: int


def _check_tz(value: str | None) -> str | None:
    if value is None:
        return value
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


class CalendarWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    org_unit_id: str | None = Field(default=None, description="null: the tenant's default calendar")
    timezone: str | None = Field(default=None, description="IANA zone; null: the org unit's time zone")
    working_hours: dict[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], list[tuple[str, str]]] = Field(
        description='{"mon": [["09:00", "12:00"], ["13:00", "18:00"]], ...}'
    )
    holidays: list[dt.date] = Field(default_factory=list)

    _tz = field_validator("timezone")(_check_tz)

    @field_validator("working_hours")
    @classmethod
    def _hours(cls, value: dict[str, list[tuple[str, str]]]) -> dict[str, list[tuple[str, str]]]:
        total = 0
        for day in WEEKDAYS:
            for index, (start, end) in enumerate(value.get(day, [])):
                try:
                    a, b = parse_hhmm(start), parse_hhmm(end)
                except ValueError as exc:
                    raise ValueError(f"{day}.{index}: {exc}") from exc
                if a >= b:
                    raise ValueError(f"{day}.{index}: start {start} is not before end {end}")
                total += b - a
        if total == 0:
            raise ValueError("at least one working interval is needed")
        return value


class CalendarRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    org_unit_id: str | None
    timezone: str | None
    working_hours: dict[str, list[list[str]]]
    holidays: list[dt.date]
    version: int


class DuePreview(BaseModel):
    start: dt.datetime
    minutes: int
    due: dt.datetime
    timezone: str
