import datetime as dt
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=300)
    description: str = Field(default="", max_length=20000)
    source_kind: Literal["aspect", "cluster", "tickets"]
    aspect_path: list[str] = Field(default_factory=list, max_length=3)
    cluster_id: str = ""
    ticket_ids: list[uuid.UUID] = Field(default_factory=list)
    org_unit_id: str = Field(default="", description="scope of the before/after metric; default: the department")
    department_id: str = Field(min_length=1, max_length=64)
    assignee_user_id: str | None = None
    metric_window_days: int = Field(default=30, ge=1, le=35)

    @model_validator(mode="after")
    def _source(self) -> "TaskCreate":
        if self.source_kind == "aspect" and not self.aspect_path:
            raise ValueError("aspect_path is required when source_kind is aspect")
        if self.source_kind == "cluster" and not self.cluster_id:
            raise ValueError("cluster_id is required when source_kind is cluster")
        if self.source_kind == "tickets" and not self.ticket_ids:
            raise ValueError("ticket_ids is required when source_kind is tickets")
        return self


class PlanSubmit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan: str = Field(min_length=1, max_length=20000)
    due_date: dt.date
    version: int | None = None


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str = Field(default="", max_length=4000)
    version: int | None = None


class Progress(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(min_length=1, max_length=20000)
    progress_percent: int | None = Field(default=None, ge=0, le=100)


class TaskUpdateRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    author_id: str
    kind: str
    note: str
    progress_percent: int | None
    created_at: dt.datetime


class TaskRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    description: str
    status: str
    source_kind: str
    aspect_path: list[str]
    cluster_id: str
    ticket_ids: list[str]
    org_unit_id: str
    department_id: str
    assignee_user_id: str | None
    created_by: str
    plan: str
    due_date: dt.date | None
    approver_id: str | None
    approval_comment: str
    verifier_id: str | None
    acceptance_comment: str
    metric: str
    metric_before: float | None
    metric_after: float | None
    submitted_at: dt.datetime | None
    approved_at: dt.datetime | None
    started_at: dt.datetime | None
    completed_at: dt.datetime | None
    accepted_at: dt.datetime | None
    version: int
    allowed_actions: list[str] = Field(default_factory=list)
