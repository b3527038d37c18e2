import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cx_alerts.rules.conditions import Condition

Trigger = Literal["survey.response.submitted", "feedback.analyzed"]
Priority = Literal["P1", "P2", "P3", "P4"]
Severity = Literal["info", "warning", "critical"]


class RuleScope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    org_unit_ids: list[str] = Field(default_factory=list, description="match these units and everything below")
    touchpoint_ids: list[str] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=list)


class TicketAction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    priority: Priority = "P3"


class NotifyAction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_ids: list[str] = Field(default_factory=list)
    notify_owner: bool = Field(default=True, description="notify the manager that owns the org unit")


class RuleActions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    severity: Severity = "warning"
    open_ticket: TicketAction | None = None
    notify: NotifyAction | None = None


class RuleDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trigger: Trigger
    condition: Condition
    scope: RuleScope = Field(default_factory=RuleScope)
    actions: RuleActions = Field(default_factory=RuleActions)
    grouping_window_minutes: int = Field(
        default=60, ge=0, le=7 * 24 * 60, description="one customer's alerts within this window share one ticket"
    )


class RuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    enabled: bool = False
    definition: RuleDefinition


class RuleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    definition: RuleDefinition
    version: int | None = Field(default=None, description="version you read (or send If-Match)")


class RuleRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str
    trigger: str
    enabled: bool
    version: int
    definition: dict[str, Any]
    created_by: str
    updated_by: str
    created_at: dt.datetime
    updated_at: dt.datetime


class RuleVersionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    name: str
    definition: dict[str, Any]
    created_by: str
    created_at: dt.datetime


class DryRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    definition: RuleDefinition
    since_hours: int = Field(default=24 * 7, ge=1, le=24 * 35)
    limit: int = Field(default=1000, ge=1, le=10000)


class DryRunMatch(BaseModel):
    event_id: uuid.UUID
    occurred_at: dt.datetime
    org_unit_id: str
    customer_key: str
    response_id: str
    feedback_id: str
    reasons: list[str]


class DryRunResult(BaseModel):
    evaluated: int
    matched: int
    would_open_tickets: int
    matches: list[DryRunMatch]
