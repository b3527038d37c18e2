import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import ValidationError

from cx_common.app import SessionDep
from cx_common.auth import Principal, require_scopes
from cx_common.db import utcnow
from cx_common.errors import Problem, not_found
from cx_common.pagination import Page, clamp_limit
from cx_ingest.feedback.records import field_errors
from cx_ingest.feedback.schemas import FeedbackIn
from cx_ingest.partners import service
from cx_ingest.partners.mapping import FieldMapping, MappingError, apply_mapping, validate_mapping
from cx_ingest.partners.models import Partner
from cx_ingest.partners.schemas import (
    ApiKeyCreate,
    ApiKeyIssued,
    ApiKeyRead,
    MappingTest,
    MappingTestResult,
    PartnerCreate,
    PartnerRead,
    PartnerUpdate,
)

router = APIRouter(prefix="/v1/partners", tags=["partners"])

Reader = Annotated[Principal, Depends(require_scopes("partners:read"))]
Writer = Annotated[Principal, Depends(require_scopes("partners:write"))]


def mapping_problem(exc: MappingError) -> Problem:
    return Problem(422, str(exc.errors[0]["field"]) + ": " + exc.errors[0]["message"], errors=exc.errors)


async def _partner(session: SessionDep, principal: Principal, partner_id: uuid.UUID) -> Partner:
    record = await service.get(session, principal.tenant_id, partner_id)
    if record is None:
        raise not_found("partner", partner_id)
    return record


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
    return PartnerRead.model_validate(await _partner(session, principal, partner_id))


@router.patch("/{partner_id}", response_model=PartnerRead)
async def update_partner(
    partner_id: uuid.UUID, body: PartnerUpdate, session: SessionDep, principal: Writer
) -> PartnerRead:
    record = await service.update_partner(session, await _partner(session, principal, partner_id), body)
    await session.commit()
    return PartnerRead.model_validate(record)


@router.put("/{partner_id}/mapping", response_model=PartnerRead)
async def put_mapping(partner_id: uuid.UUID, body: FieldMapping, session: SessionDep, principal: Writer) -> PartnerRead:
    """Save the partner's field mapping; it is validated first (unknown targets, bad paths, missing keys)."""
    record = await _partner(session, principal, partner_id)
    try:
        await service.set_mapping(session, record, body)
    except MappingError as exc:
        raise mapping_problem(exc) from exc
    await session.commit()
    return PartnerRead.model_validate(record)


@router.delete("/{partner_id}/mapping", status_code=status.HTTP_204_NO_CONTENT)
async def delete_mapping(partner_id: uuid.UUID, session: SessionDep, principal: Writer) -> Response:
    await service.set_mapping(session, await _partner(session, principal, partner_id), None)
    await session.commit()
    return Response(status_code=204)


@router.post("/{partner_id}/mapping:test", response_model=MappingTestResult)
async def test_mapping(
    partner_id: uuid.UUID, body: MappingTest, session: SessionDep, principal: Reader
) -> MappingTestResult:
    """Apply a mapping (the given one, else the saved one) to a sample payload and validate the result."""
    record = await _partner(session, principal, partner_id)
    mapping = body.mapping or service.partner_mapping(record)
    if mapping is None:
        raise Problem(422, "mapping: the partner has no saved mapping; pass one", errors=[{"field": "mapping"}])
    try:
        validate_mapping(mapping)
    except MappingError as exc:
        return MappingTestResult(ok=False, mapped={}, errors=exc.errors)
    mapped = apply_mapping(mapping, body.sample)
    mapped.setdefault("channel", record.default_channel)
    try:
        FeedbackIn.model_validate(mapped)
    except ValidationError as exc:
        errors = [e.model_dump() for e in field_errors(exc)]
        return MappingTestResult(ok=False, mapped=mapped, errors=errors)
    return MappingTestResult(ok=True, mapped=mapped, errors=[])


@router.post("/{partner_id}/keys", status_code=status.HTTP_201_CREATED, response_model=ApiKeyIssued)
async def issue_key(partner_id: uuid.UUID, body: ApiKeyCreate, session: SessionDep, principal: Writer) -> ApiKeyIssued:
    """Issue an API key (shown once). With `rotate_overlap_seconds`, the other keys expire after the overlap."""
    record, key = await service.issue_key(
        session, await _partner(session, principal, partner_id), body, principal.user_id
    )
    await session.commit()
    return ApiKeyIssued(**ApiKeyRead.model_validate(record).model_dump(), key=key)


@router.get("/{partner_id}/keys", response_model=list[ApiKeyRead])
async def list_keys(partner_id: uuid.UUID, session: SessionDep, principal: Reader) -> list[ApiKeyRead]:
    keys = await service.list_keys(session, await _partner(session, principal, partner_id))
    return [ApiKeyRead.model_validate(k) for k in keys]


@router.delete("/{partner_id}/keys/{key_id}", response_model=ApiKeyRead)
async def revoke_key(partner_id: uuid.UUID, key_id: uuid.UUID, session: SessionDep, principal: Writer) -> ApiKeyRead:
    """Revoke a key at once."""
    key = await service.get_key(session, await _partner(session, principal, partner_id), key_id)
    if key is None:
        raise not_found("API key", key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    await session.commit()
    return ApiKeyRead.model_validate(key)
