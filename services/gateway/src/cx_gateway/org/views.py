import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from cx_common.app import SessionDep
from cx_common.auth import Principal
from cx_common.pagination import Page, clamp_limit
from cx_gateway.deps import ScopeDep, SettingsDep
from cx_gateway.identity.deps import require
from cx_gateway.org import service
from cx_gateway.org.schemas import OrgTreeNode, OrgUnitCreate, OrgUnitRead, OrgUnitUpdate

router = APIRouter(prefix="/api/v1/org-units", tags=["org units"])

Reader = Annotated[Principal, Depends(require("org:read"))]
Writer = Annotated[Principal, Depends(require("org:write"))]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=OrgUnitRead)
async def create_org_unit(
    body: OrgUnitCreate, session: SessionDep, principal: Writer, scope: ScopeDep, settings: SettingsDep
) -> OrgUnitRead:
    unit = await service.create(session, principal.tenant_id, body, settings.events_subject_prefix, scope)
    await session.commit()
    return service.to_read(unit)


@router.get("", response_model=Page[OrgUnitRead], summary="Units in the caller's subtree, in tree order")
async def list_org_units(
    session: SessionDep,
    _: Reader,
    scope: ScopeDep,
    parent_id: uuid.UUID | None = None,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
    cursor: str | None = None,
) -> Page[OrgUnitRead]:
    rows, next_cursor = await service.list_page(
        session, scope, limit=clamp_limit(limit), cursor=cursor, parent_id=parent_id
    )
    return Page[OrgUnitRead](items=[service.to_read(r) for r in rows], next_cursor=next_cursor)


@router.get("/tree", response_model=list[OrgTreeNode], summary="The caller's subtree as nested nodes")
async def org_tree(session: SessionDep, _: Reader, scope: ScopeDep) -> list[OrgTreeNode]:
    return await service.tree(session, scope)


@router.get("/{org_unit_id}", response_model=OrgUnitRead)
async def get_org_unit(org_unit_id: uuid.UUID, session: SessionDep, _: Reader, scope: ScopeDep) -> OrgUnitRead:
    return service.to_read(await service.get_visible(session, scope, org_unit_id))


@router.patch("/{org_unit_id}", response_model=OrgUnitRead)
async def update_org_unit(
    org_unit_id: uuid.UUID,
    body: OrgUnitUpdate,
    session: SessionDep,
    _: Writer,
    scope: ScopeDep,
    settings: SettingsDep,
) -> OrgUnitRead:
    unit = await service.get_visible(session, scope, org_unit_id)
    unit = await service.update_unit(session, scope, unit, body, settings.events_subject_prefix)
    await session.commit()
    return service.to_read(unit)


@router.delete("/{org_unit_id}", status_code=204)
async def delete_org_unit(
    org_unit_id: uuid.UUID, session: SessionDep, _: Writer, scope: ScopeDep, settings: SettingsDep
) -> Response:
    unit = await service.get_visible(session, scope, org_unit_id)
    await service.delete_unit(session, scope, unit, settings.events_subject_prefix)
    await session.commit()
    return Response(status_code=204)
