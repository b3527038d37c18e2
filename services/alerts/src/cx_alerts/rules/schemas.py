import datetime as dt
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Language = Literal["zh-Hans", "zh-Hant", "en"]


class AlertRuleCreate(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    default_language: Language = "zh-Hans"


class AlertRuleRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    default_language: str
    status: str
    created_at: dt.datetime
