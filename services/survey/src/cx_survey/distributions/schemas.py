import datetime as dt
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from cx_survey.surveys.definition import Language


class DistributionCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    channel: Literal["email", "webhook"] = Field(description="webhook: SMS / WeChat / app push gateways")
    webhook_url: HttpUrl | None = None
    touchpoint_id: uuid.UUID | None = None
    delay_hours: float = Field(
        default=0, ge=0, le=24 * 90, description="e.g. 24: send the survey 24 h after the trigger"
    )
    reminder_after_hours: float | None = Field(default=None, gt=0, le=24 * 30)
    max_reminders: int = Field(default=1, ge=0, le=5)
    frequency_days: int | None = Field(
        default=None, ge=1, le=365, description="survey a customer at most once per N days"
    )
    link_valid_hours: int = Field(default=24 * 14, ge=1, le=24 * 365)

    @model_validator(mode="after")
    def _webhook(self) -> "DistributionCreate":
        if self.channel == "webhook" and self.webhook_url is None:
            raise ValueError("webhook_url is required for the webhook channel")
        return self


class DistributionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    survey_id: uuid.UUID
    name: str
    channel: str
    webhook_url: str | None
    touchpoint_id: uuid.UUID | None
    delay_seconds: int
    reminder_after_seconds: int | None
    max_reminders: int
    frequency_days: int | None
    created_at: dt.datetime


class SendCreate(BaseModel):
    """A trigger (e.g. an order was delivered): schedules the survey for one customer."""

    customer_key: str = Field(min_length=1, max_length=200)
    recipient: str = Field(min_length=3, max_length=320, description="e-mail address, phone number or app user id")
    language: Language = "zh-Hans"
    hidden: dict[str, str] = Field(
        default_factory=dict,
        description="hidden fields of the personal link (e.g. order_id); only those the survey declares, else 422",
    )
    send_at: dt.datetime | None = Field(default=None, description="default: now + the distribution's delay")


class MessageRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    distribution_id: uuid.UUID
    invitation_id: uuid.UUID
    kind: str
    seq: int
    customer_key: str | None
    recipient: str
    due_at: dt.datetime
    status: str
    attempts: int
    last_error: str | None
    sent_at: dt.datetime | None


class CodesAdd(BaseModel):
    codes: list[str] = Field(min_length=1, max_length=10000)


class CodesResult(BaseModel):
    added: int
    available: int
