import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    TypeAdapter,
    model_validator,
)

Channel = Literal["survey", "hotline", "chat", "email", "review", "social", "store", "crm", "other"]
CHANNELS: tuple[str, ...] = ("survey", "hotline", "chat", "email", "review", "social", "store", "crm", "other")
Language = Literal["zh-Hans", "zh-Hant", "en"]
Speaker = Literal["agent", "customer", "bot"]
RecordStatus = Literal["accepted", "duplicate", "rejected"]

MAX_TEXT = 20_000
MAX_TURNS = 2_000
MAX_TITLE = 500


def _storable(value: dt.datetime) -> dt.datetime:
    """Postgres stores the UTC instant: 9999-12-31T23:59:59-01:00 has none that Python (or asyncpg) can write."""
    if value.tzinfo is not None:
        try:
            value.astimezone(dt.UTC)
        except OverflowError:
            raise ValueError("out of range: the time in UTC must lie between years 1 and 9999") from None
    return value


# Bounds checked by pydantic-core itself (no Python call per record on the partner hot path): an instant a day
# inside the years 1-9999 in UTC, so every offset converts.
StorableAwareDatetime = Annotated[
    AwareDatetime,
    Field(gt=dt.datetime(1, 1, 2, tzinfo=dt.UTC), lt=dt.datetime(9999, 12, 30, tzinfo=dt.UTC)),
]
StorableDatetime = Annotated[dt.datetime, AfterValidator(_storable)]  # naive allowed (read as UTC)


class TurnIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seq: int | None = Field(default=None, ge=0, description="Order of the turn; defaults to its position")
    speaker: Speaker
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    offset_ms: int | None = Field(default=None, ge=0, description="Milliseconds since the conversation started")
    at: dt.datetime | None = Field(default=None, description="Wall-clock time of the turn")
    agent_id: str | None = Field(default=None, max_length=200)


class FeedbackIn(BaseModel):
    """A feedback item in our canonical shape (a partner field mapping produces this from the partner's shape)."""

    model_config = ConfigDict(extra="forbid")

    external_id: str = Field(min_length=1, max_length=200, description="The partner's id; natural key for dedup")
    channel: Channel | None = Field(default=None, description="Defaults to the partner's default channel")
    text: str | None = Field(default=None, max_length=MAX_TEXT)
    title: str | None = Field(default=None, max_length=MAX_TITLE)
    turns: list[TurnIn] | None = Field(default=None, max_length=MAX_TURNS, description="Conversations: ordered turns")
    agent_id: str | None = Field(default=None, max_length=200)
    touchpoint_id: str | None = Field(default=None, max_length=200)
    journey_stage: str | None = Field(default=None, max_length=200)
    org_unit_id: str | None = Field(default=None, max_length=200)
    customer_key: str | None = Field(default=None, max_length=200)
    product_sku: str | None = Field(default=None, max_length=200)
    language: Language | None = None
    occurred_at: StorableAwareDatetime | None = Field(
        default=None, description="With a timezone offset; defaults to the time of receipt"
    )
    scores: dict[str, FiniteFloat] = Field(default_factory=dict, description="e.g. rating, nps, csat")
    attributes: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _has_content(self) -> "FeedbackIn":
        if (not self.text or self.text.isspace()) and not self.turns:  # isspace: no stripped copy of the text
            raise ValueError("text or turns is required")
        return self


class BatchIn(BaseModel):
    items: list[Any] = Field(
        min_length=1, max_length=1000, description="Records in the partner's shape (mapped) or in FeedbackIn shape"
    )


class ODataIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    record_key: str = Field(min_length=1, max_length=200, description="e.g. the order number or customer id")
    customer_key: str | None = Field(default=None, max_length=200)
    org_unit_id: str | None = Field(default=None, max_length=200)
    occurred_at: StorableDatetime | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)


class FieldError(BaseModel):
    field: str
    message: str


class RecordResult(BaseModel):
    index: int
    external_id: str | None = None
    status: RecordStatus
    id: uuid.UUID | None = None
    action: Literal["created", "updated"] | None = None
    reason: str | None = None
    errors: list[FieldError] = Field(default_factory=list)


RESULTS_JSON = TypeAdapter(list[RecordResult])


class BatchCounts(BaseModel):
    total: int
    accepted: int
    duplicate: int
    rejected: int


class BatchResult(BaseModel):
    import_id: uuid.UUID
    kind: str
    status: str = Field(description="completed | running (file imports) | failed")
    counts: BatchCounts
    results: list[RecordResult] = Field(description="Per record; for file imports see the error report instead")
    filename: str | None = None
    total_rows: int | None = Field(default=None, description="File imports: data rows in the file")
    processed_rows: int | None = Field(default=None, description="File imports: rows done so far (progress)")
    error: str | None = None


class TurnOut(BaseModel):
    seq: int
    speaker: str
    text: str
    offset_ms: int | None = None
    at: dt.datetime | None = None
    agent_id: str | None = None


class FeedbackRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    source_key: str
    partner_id: uuid.UUID | None
    external_id: str
    channel: str
    touchpoint_id: str
    journey_stage: str
    org_unit_id: str
    customer_key: str
    product_sku: str
    agent_id: str
    language: str
    occurred_at: dt.datetime
    title: str
    text: str
    turns: list[TurnOut] | None
    raw_text: str | None
    redactions: dict[str, int]
    scores: dict[str, float]
    attributes: dict[str, Any]
    source_response_id: str
    revision: int
    analysis_state: str
    analysis: dict[str, Any] | None
    sentiment: str | None
    sentiment_score: float | None
    unmatched: bool | None
    analyzed_at: dt.datetime | None
    created_at: dt.datetime
