import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cx_survey.surveys.definition import LocalText


class StageCreate(BaseModel):
    key: str = Field(pattern=r"^[a-z][a-z0-9_\-]{0,63}$")
    name: LocalText
    position: int = Field(default=0, ge=0, le=1000)


class StageRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    key: str
    name: dict[str, Any]
    position: int


class TouchpointCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    stage_key: str = Field(min_length=1, max_length=64)
    channel: str = Field(min_length=1, max_length=64, description="e.g. store, delivery, hotline, app, web, wechat")
    org_unit_id: str | None = Field(default=None, max_length=64)


class TouchpointRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    stage_key: str
    channel: str
    org_unit_id: str | None
    created_at: dt.datetime
