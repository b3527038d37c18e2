import datetime as dt
import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from cx_gateway.analytics.formula import FormulaError, parse
from cx_gateway.analytics.service import METRIC_NAMES


class KpiCreate(BaseModel):
    code: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str = Field(min_length=1, max_length=200)
    formula: str = Field(
        min_length=1,
        max_length=500,
        description=f"arithmetic over {', '.join(METRIC_NAMES)}; min/max/abs/round allowed",
        examples=["0.4*nps/100 + 0.3*csat/5 + 0.3*(1 - complaint_rate)"],
    )
    description: str = Field(default="", max_length=2000)
    target: float | None = None

    @field_validator("formula")
    @classmethod
    def _valid_formula(cls, value: str) -> str:
        try:
            parse(value, set(METRIC_NAMES))
        except FormulaError as exc:
            raise ValueError(str(exc)) from exc
        return value


class KpiRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    code: str
    name: str
    formula: str
    description: str
    target: float | None
    created_at: dt.datetime


class KpiValue(BaseModel):
    org_unit_id: str
    name: str
    value: float | None
    variables: dict[str, float | None]


class CompetitorCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="how the term is reported")
    aliases: list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=20, description="other spellings, matched case-insensitively"
    )

    @field_validator("name")
    @classmethod
    def _stripped(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


class CompetitorRead(BaseModel):
    id: uuid.UUID
    name: str
    aliases: list[str]
    created_at: dt.datetime
