import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from cx_common.app import SessionDep
from cx_common.auth import Principal, require_scopes
from cx_common.errors import not_found
from cx_common.pagination import Page, clamp_limit
from cx_ingest.partners import service
from cx_ingest.partners.schemas import PartnerCreate, PartnerRead

router = APIRouter(prefix="/v1/partners", tags=["partners"])

Reader = Annotated[Principal, Depends(require_scopes("partners:read"))]
Writer = Annotated[Principal, Depends(require_scopes("partners:write"))]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=PartnerRead)
async def create_partner(body: PartnerCreate, session: SessionDep, principal: Writer) -> PartnerRead:
    record = await service.create(session, principal.tenant_id, body)
    await session.commit()
    return PartnerRead.model_validate(record)


@router.get("", response_model=Page[PartnerRead])
async def list_partners(
    session: SessionDep,
    principal: Reader,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
    cursor: str | None = None,
) -> Page[PartnerRead]:
    rows, next_cursor = await service.list_page(session, principal.tenant_id, limit=clamp_limit(limit), cursor=cursor)
    return Page[PartnerRead](items=[PartnerRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/{partner_id}", response_model=PartnerRead)
async def get_partner(partner_id: uuid.UUID, session: SessionDep, principal: Reader) -> PartnerRead:
    record = await service.get(session, principal.tenant_id, partner_id)
    if record is None:
        raise not_found("partner", partner_id)
    return PartnerRead.model_validate(record)
