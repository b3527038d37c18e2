import datetime as dt
import uuid
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from cx_survey.surveys.definition import Language


class ResponseSubmit(BaseModel):
    answers: dict[str, Any] = Field(description="question id → answer (shape depends on the question type)")
    hidden: dict[str, str] = Field(default_factory=dict, description="hidden fields prefilled from the link")
    language: Language | None = None
    submission_id: str | None = Field(
        default=None, min_length=8, max_length=128, description="client-generated key: a resubmission returns the first"
    )
    token: str | None = Field(default=None, max_length=128, description="personal single-use invitation token")
    touchpoint_id: uuid.UUID | None = None
    resume_id: str | None = Field(default=None, max_length=64)
    started_at: AwareDatetime | None = Field(default=None, description="when the respondent began (with its offset)")


class PartialSave(BaseModel):
    answers: dict[str, Any]
    hidden: dict[str, str] = Field(default_factory=dict)
    resume_id: str | None = Field(default=None, max_length=64, description="continue an earlier partial save")


class AutosaveRead(BaseModel):
    resume_id: str
    answered: int


class PartialRead(BaseModel):
    resume_id: str
    survey_id: uuid.UUID
    answers: dict[str, Any]
    started_at: dt.datetime


class ResponseRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    survey_id: uuid.UUID
    version: int
    touchpoint_id: uuid.UUID | None
    journey_stage: str | None
    channel: str | None
    org_unit_id: str | None
    customer_key: str | None
    language: str
    answers: dict[str, Any]
    hidden: dict[str, Any]
    nps: int | None
    nps_category: str | None
    csat: float | None
    ces: float | None
    started_at: dt.datetime | None
    submitted_at: dt.datetime
    duration_ms: int | None


class SubmitResult(ResponseRead):
    duplicate: bool = False
    incentive_code: str | None = None


class InvitationCreate(BaseModel):
    customer_key: str | None = Field(default=None, max_length=200)
    touchpoint_id: uuid.UUID | None = None
    hidden: dict[str, str] = Field(
        default_factory=dict, description="hidden fields of the link; only those the survey declares, else 422"
    )
    expires_in_hours: int = Field(default=168, ge=1, le=24 * 365)


class InvitationRead(BaseModel):
    id: uuid.UUID
    survey_id: uuid.UUID
    token: str
    url: str
    expires_at: dt.datetime


class DeletionResult(BaseModel):
    customer_key: str
    responses_deleted: int
    invitations_deleted: int
    messages_deleted: int = Field(description="invitations and reminders sent or due (with their mail-sink copies)")
