import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Language = Literal["zh-Hans", "zh-Hant", "en"]


class NodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_\-.]{1,64}$", description="Stable node id; generated if omitted"
    )
    parent_id: str | None = Field(default=None, description="Empty for level-1 nodes")
    names: dict[Language, str] = Field(min_length=1, description="language -> name; must include the primary language")
    keywords: list[str] = Field(default_factory=list, max_length=200)
    examples: list[str] = Field(default_factory=list, max_length=100)


class Node(NodeIn):
    id: str
    level: int


class NodePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    names: dict[Language, str] | None = None
    keywords: list[str] | None = Field(default=None, max_length=200)
    examples: list[str] | None = Field(default=None, max_length=100)


Template = Literal["retail", "ecommerce", "food_delivery", "automotive", "banking"]


class CodebookCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    primary_language: Language = "zh-Hans"
    template: Template | None = Field(default=None, description="Start from an industry starter codebook")
    nodes: list[NodeIn] = Field(default_factory=list, max_length=5000, description="Ignored when template is set")
    active: bool = Field(default=False, description="Code new feedback against this codebook")


class DraftIn(BaseModel):
    nodes: list[NodeIn] = Field(max_length=5000)


class PublishIn(BaseModel):
    note: str = Field(default="", max_length=500)


class CodebookRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    primary_language: str
    active: bool
    latest_version: int
    draft_nodes: list[Node]
    created_at: dt.datetime
    updated_at: dt.datetime


class VersionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    codebook_id: uuid.UUID
    version: int
    nodes: list[Node]
    fingerprint: str
    note: str
    published_by: str
    published_at: dt.datetime


class HistoryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    action: str
    actor: str
    before: Any
    after: Any
    at: dt.datetime


class TemplateRead(BaseModel):
    id: str
    names: dict[str, str]
    nodes: list[Node]


class RecodeJobRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    codebook_id: uuid.UUID
    version: int
    status: str = Field(description="running | completed | superseded")
    total: int = Field(description="Items coded against an older version when the job started")
    queued: int = Field(description="Items sent back to the analysis queue so far")
    recoded: int = Field(default=0, description="Items now coded against this version or later")
    created_at: dt.datetime
