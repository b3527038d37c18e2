import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from cx_common.app import SessionDep
from cx_common.auth import Principal, require_scopes
from cx_common.errors import not_found
from cx_common.pagination import Page, clamp_limit
from cx_gateway.org_units import service
from cx_gateway.org_units.schemas import OrgUnitCreate, OrgUnitRead

router = APIRouter(prefix="/v1/org-units", tags=["org_units"])

Reader = Annotated[Principal, Depends(require_scopes("org:read"))]
Writer = Annotated[Principal, Depends(require_scopes("org:write"))]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=OrgUnitRead)
async def create_org_unit(body: OrgUnitCreate, session: SessionDep, principal: Writer) -> OrgUnitRead:
    record = await service.create(session, principal.tenant_id, body)
    await session.commit()
    return OrgUnitRead.model_validate(record)


@router.get("", response_model=Page[OrgUnitRead])
async def list_org_units(
    session: SessionDep,
    principal: Reader,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
    cursor: str | None = None,
) -> Page[OrgUnitRead]:
    rows, next_cursor = await service.list_page(session, principal.tenant_id, limit=clamp_limit(limit), cursor=cursor)
    return Page[OrgUnitRead](items=[OrgUnitRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/{org_unit_id}", response_model=OrgUnitRead)
async def get_org_unit(org_unit_id: uuid.UUID, session: SessionDep, principal: Reader) -> OrgUnitRead:
    record = await service.get(session, principal.tenant_id, org_unit_id)
    if record is None:
        raise not_found("org unit", org_unit_id)
    return OrgUnitRead.model_validate(record)
