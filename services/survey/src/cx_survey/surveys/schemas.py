import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cx_survey.surveys.definition import Definition, Language

TemplateName = Literal["nps", "csat_after_service", "post_purchase"]


class SurveyCreate(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    default_language: Language = "zh-Hans"
    definition: Definition | None = None
    template: TemplateName | None = Field(default=None, description="start from a template instead of a definition")
    touchpoint_id: uuid.UUID | None = None
    quota: int | None = Field(default=None, ge=1, description="stop accepting after this many responses")


class SurveyUpdate(BaseModel):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    definition: Definition | None = None
    touchpoint_id: uuid.UUID | None = None
    quota: int | None = Field(default=None, ge=1)


class SurveyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    default_language: str
    status: str
    current_version: int | None
    touchpoint_id: uuid.UUID | None
    quota: int | None
    definition: dict[str, Any] | None
    created_at: dt.datetime
    updated_at: dt.datetime


class VersionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    survey_id: uuid.UUID
    version: int
    definition: dict[str, Any]
    published_by: str
    published_at: dt.datetime


class SurveyExport(BaseModel):
    format: Literal["cx-survey/v1"] = "cx-survey/v1"
    title: str = Field(min_length=1, max_length=200)
    default_language: Language = "zh-Hans"
    definition: Definition


class TemplateRead(BaseModel):
    name: TemplateName
    definition: dict[str, Any]
