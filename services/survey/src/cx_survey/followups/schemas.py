import datetime as dt
import uuid

from pydantic import BaseModel, ConfigDict, Field


class FollowUpRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    ticket_id: str
    request_id: uuid.UUID = Field(description="alerts' closed-loop contact that asked for it")
    customer_key: str
    org_unit_id: str
    source_response_id: str
    source_feedback_id: str
    requested_by: str
    requested_distribution_id: uuid.UUID | None = Field(description="as asked; null: the tenant's default")
    distribution_id: uuid.UUID | None
    status: str = Field(description="scheduled (a triggered send: message_id) | undeliverable (see reason)")
    reason: str | None
    message_id: uuid.UUID | None
    message_status: str | None = Field(default=None, description="pending | sent | skipped | failed")
    recipient_source: str | None = Field(description="original_invitation | customer_history")
    requested_at: dt.datetime
    created_at: dt.datetime


class FollowUpDefault(BaseModel):
    model_config = ConfigDict(extra="forbid")

    distribution_id: uuid.UUID | None = Field(
        description="the distribution follow-up surveys go through when a request names none; null: none"
    )
