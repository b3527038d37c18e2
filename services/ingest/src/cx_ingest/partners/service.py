import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cx_common.db import utcnow
from cx_common.pagination import cursor_uuid, encode_cursor
from cx_ingest.partners import apikeys
from cx_ingest.partners.mapping import FieldMapping, validate_mapping
from cx_ingest.partners.models import ApiKey, Partner
from cx_ingest.partners.schemas import ApiKeyCreate, PartnerCreate, PartnerUpdate


async def create(session: AsyncSession, tenant_id: uuid.UUID, data: PartnerCreate) -> Partner:
    record = Partner(tenant_id=tenant_id, status="active", **data.model_dump())
    session.add(record)
    await session.flush()
    return record


async def get(session: AsyncSession, tenant_id: uuid.UUID, partner_id: uuid.UUID) -> Partner | None:
    result = await session.execute(select(Partner).where(Partner.tenant_id == tenant_id, Partner.id == partner_id))
    return result.scalar_one_or_none()


async def update_partner(session: AsyncSession, partner: Partner, data: PartnerUpdate) -> Partner:
    for key, value in data.model_dump(exclude_unset=True).items():
        if value is not None:
            setattr(partner, key, value)
    await session.flush()
    return partner


async def set_mapping(session: AsyncSession, partner: Partner, mapping: FieldMapping | None) -> Partner:
    if mapping is not None:
        validate_mapping(mapping)  # raises MappingError
    partner.field_mapping = mapping.model_dump(exclude_none=True) if mapping is not None else None
    await session.flush()
    return partner


async def list_page(
    session: AsyncSession, tenant_id: uuid.UUID, *, limit: int, cursor: str | None
) -> tuple[list[Partner], str | None]:
    query = select(Partner).where(Partner.tenant_id == tenant_id).order_by(Partner.id).limit(limit + 1)
    if (after := cursor_uuid(cursor)) is not None:
        query = query.where(Partner.id > after)
    rows = list((await session.execute(query)).scalars())
    next_cursor = encode_cursor({"id": str(rows[limit - 1].id)}) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def issue_key(session: AsyncSession, partner: Partner, data: ApiKeyCreate, actor: str) -> tuple[ApiKey, str]:
    now = utcnow()
    if data.rotate_overlap_seconds is not None:
        # Rotation with overlap: the partner's other live keys keep working for the overlap window only.
        cutoff = now + dt.timedelta(seconds=data.rotate_overlap_seconds)
        await session.execute(
            update(ApiKey)
            .where(
                ApiKey.tenant_id == partner.tenant_id,
                ApiKey.partner_id == partner.id,
                ApiKey.revoked_at.is_(None),
                (ApiKey.expires_at.is_(None)) | (ApiKey.expires_at > cutoff),
            )
            .values(expires_at=cutoff)
        )
    new = apikeys.generate()
    record = ApiKey(
        tenant_id=partner.tenant_id,
        partner_id=partner.id,
        name=data.name,
        prefix=new.prefix,
        key_hash=new.key_hash,
        created_at=now,
        created_by=actor,
        expires_at=now + dt.timedelta(days=data.expires_in_days) if data.expires_in_days else None,
    )
    session.add(record)
    await session.flush()
    return record, new.key


async def list_keys(session: AsyncSession, partner: Partner) -> list[ApiKey]:
    query = (
        select(ApiKey)
        .where(ApiKey.tenant_id == partner.tenant_id, ApiKey.partner_id == partner.id)
        .order_by(ApiKey.created_at)
    )
    return list((await session.execute(query)).scalars())


async def get_key(session: AsyncSession, partner: Partner, key_id: uuid.UUID) -> ApiKey | None:
    query = select(ApiKey).where(
        ApiKey.tenant_id == partner.tenant_id, ApiKey.partner_id == partner.id, ApiKey.id == key_id
    )
    return (await session.execute(query)).scalar_one_or_none()


async def find_key(session: AsyncSession, prefix: str) -> tuple[ApiKey, Partner] | None:
    query = select(ApiKey, Partner).join(Partner, Partner.id == ApiKey.partner_id).where(ApiKey.prefix == prefix)
    row = (await session.execute(query)).first()
    return (row[0], row[1]) if row is not None else None


def partner_mapping(partner: Partner) -> FieldMapping | None:
    raw: dict[str, Any] | None = partner.field_mapping
    return FieldMapping.model_validate(raw) if raw else None
