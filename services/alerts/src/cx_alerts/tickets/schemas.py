import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

Priority = Literal["P1", "P2", "P3", "P4"]
Status = Literal["open", "acknowledged", "in_progress", "waiting_customer", "resolved", "closed"]


class TicketCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=300)
    priority: Priority = "P3"
    org_unit_id: str = Field(min_length=1, max_length=64)
    customer_key: str = Field(default="", max_length=200)
    touchpoint_id: str = Field(default="", max_length=64)
    channel: str = Field(default="", max_length=32)
    owner_user_id: str | None = Field(default=None, description="default: the manager found through the org tree")
    watchers: list[str] = Field(default_factory=list)


class TicketPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=300)
    priority: Priority | None = None
    owner_user_id: str | None = None
    watchers: list[str] | None = None
    version: int | None = Field(default=None, description="version you read (or send If-Match)")


class Transition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Status
    resolution_code: str | None = Field(default=None, max_length=64)
    outcome: str | None = Field(default=None, max_length=4000)
    note: str | None = Field(default=None, max_length=4000, description="internal note kept with the change")
    version: int | None = None


class CommentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(min_length=1, max_length=20000)
    internal: bool = Field(default=False, description="internal notes are hidden from readers without tickets:write")


class CommentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    author_id: str
    body: str
    internal: bool
    created_at: dt.datetime


class ContactCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["call", "message", "visit", "email"]
    outcome: Literal["reached", "no_answer", "resolved", "follow_up", "refused"]
    summary: str = Field(default="", max_length=20000)
    contacted_at: dt.datetime | None = None
    follow_up_survey: bool = Field(
        default=False,
        description="ask for a follow-up survey to the ticket's customer (published as ticket.follow_up_requested; "
        "the survey service schedules it)",
    )
    follow_up_distribution_id: uuid.UUID | None = Field(
        default=None,
        description="the survey distribution to send the follow-up through; default: the tenant's follow-up "
        "distribution set in the survey service (PUT /v1/distributions/follow-up-default)",
    )

    @field_validator("follow_up_distribution_id")
    @classmethod
    def _only_with_follow_up(cls, value: uuid.UUID | None, info: ValidationInfo) -> uuid.UUID | None:
        if value is not None and not info.data.get("follow_up_survey"):
            raise ValueError("only with follow_up_survey: true")
        return value


class ContactRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    method: str
    outcome: str
    summary: str
    contacted_at: dt.datetime
    recorded_by: str
    follow_up_survey: bool
    follow_up_distribution_id: uuid.UUID | None = None
    follow_up_response_id: str | None = Field(default=None, description="the follow-up survey's response, once in")
    follow_up_scores: dict[str, float] | None = Field(default=None, description="its NPS / CSAT / CES")
    follow_up_responded_at: dt.datetime | None = None


class TimerRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kind: str
    reason: str
    level: int
    due_at: dt.datetime
    fired_at: dt.datetime | None
    cancelled_at: dt.datetime | None
    outcome: str


class TicketRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    status: str
    priority: str
    org_unit_id: str
    org_path: list[str]
    assigned_org_unit_id: str
    owner_user_id: str | None
    watchers: list[str]
    escalation_level: int
    customer_key: str
    touchpoint_id: str
    channel: str
    rule_id: uuid.UUID | None
    alert_id: uuid.UUID | None
    source_type: str
    source_event_id: uuid.UUID | None
    source_response_id: str
    source_feedback_id: str
    opened_at: dt.datetime
    first_response_due: dt.datetime | None
    resolution_due: dt.datetime | None
    first_responded_at: dt.datetime | None
    resolved_at: dt.datetime | None
    closed_at: dt.datetime | None
    first_response_breached: bool
    resolution_breached: bool
    resolution_code: str
    outcome: str
    version: int
    allowed_transitions: list[str] = Field(default_factory=list)


class TicketDetail(TicketRead):
    source: dict[str, Any] | None = Field(description="the original response / analysed feedback (NLP analysis)")
    analysis: dict[str, Any] | None = Field(
        description="NLP analysis of the source survey response's open answers, once ingest has analysed them"
    )
    contacts: list[ContactRead]
    timers: list[TimerRead]
