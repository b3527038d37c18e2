import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

KIND_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"


class OrgUnitCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    code: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    kind: str = Field(default="store", pattern=KIND_PATTERN, description="hq | region | city | store | department …")
    parent_id: uuid.UUID | None = Field(default=None, description="omit only for the root (HQ) of the tenant")
    timezone: str = Field(default="Asia/Shanghai", max_length=64)
    attributes: dict[str, str] = Field(default_factory=dict, description="e.g. {'size': 'large'} (used by X+O)")


class OrgUnitUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    kind: str | None = Field(default=None, pattern=KIND_PATTERN)
    parent_id: uuid.UUID | None = Field(default=None, description="move the unit (and its subtree) under this one")
    timezone: str | None = Field(default=None, max_length=64)
    attributes: dict[str, str] | None = None
    manager_user_id: uuid.UUID | None = None


class OrgUnitRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    parent_id: uuid.UUID | None
    name: str
    code: str
    kind: str
    timezone: str
    depth: int
    ancestor_ids: list[uuid.UUID]
    attributes: dict[str, Any]
    manager_user_id: uuid.UUID | None
    created_at: dt.datetime


class OrgTreeNode(BaseModel):
    id: uuid.UUID
    name: str
    code: str
    kind: str
    children: list["OrgTreeNode"] = Field(default_factory=list)
