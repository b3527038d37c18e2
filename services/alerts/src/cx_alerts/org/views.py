from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from cx_alerts.org import service
from cx_common.app import SessionDep
from cx_common.auth import Principal, require_scopes

router = APIRouter(prefix="/v1/org-units", tags=["org"])

Reader = Annotated[Principal, Depends(require_scopes("tickets:read"))]


class OrgUnitRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    parent_id: str | None
    name: str
    kind: str
    ancestor_ids: list[str]
    timezone: str
    manager_user_id: str | None


@router.get("", response_model=list[OrgUnitRead], summary="The local projection of the org tree (read only)")
async def list_units(session: SessionDep, principal: Reader) -> list[OrgUnitRead]:
    return [OrgUnitRead.model_validate(u) for u in await service.list_units(session, principal.tenant_id)]
