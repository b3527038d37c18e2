import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Phrase = Annotated[str, Field(min_length=1, max_length=200)]


class RequiredItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=60, description="greeting, identity_check, closing, ...")
    phrases: list[Phrase] = Field(min_length=1, description="any of these counts")
    where: Literal["start", "end", "any"] = "any"
    within_turns: int = Field(default=3, ge=1, le=50, description="agent turns from the start/end that count")
    weight: float = Field(default=1.0, gt=0)


class ComplianceDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    required: list[RequiredItem] = Field(default_factory=list)
    forbidden_phrases: list[Phrase] = Field(default_factory=list, description="agent must never say these")
    customer_risk_phrases: list[Phrase] = Field(default_factory=list, description="customer says: complaint, lawyer…")
    forbidden_weight: float = Field(default=1.0, gt=0)
    pass_score: float = Field(default=0.8, ge=0, le=1)
    channels: list[str] = Field(default_factory=list, description="empty: every conversation channel")
    severity: Literal["info", "warning", "critical"] = "warning"


class ProfileCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    enabled: bool = True
    definition: ComplianceDefinition


class ProfileRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    enabled: bool
    definition: dict[str, Any]


class ResultRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    profile_id: uuid.UUID
    feedback_id: str
    agent_id: str
    occurred_at: dt.datetime
    score: float
    passed: bool
    violations: list[dict[str, Any]]


Interval = Literal["day", "week"]


class ScorePoint(BaseModel):
    period_start: dt.date = Field(description="the day, or the Monday of the ISO week (UTC)")
    conversations: int
    average_score: float
    pass_rate: float
    violations: dict[str, int]


class Scorecard(BaseModel):
    agent_id: str
    conversations: int
    average_score: float
    pass_rate: float
    violations: dict[str, int]
    trend: list[ScorePoint] = Field(default_factory=list, description="per period, oldest first (with `interval`)")
