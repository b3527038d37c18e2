import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cx_common.pagination import decode_cursor, encode_cursor
from cx_ingest.partners.models import Partner
from cx_ingest.partners.schemas import PartnerCreate


async def create(session: AsyncSession, tenant_id: uuid.UUID, data: PartnerCreate) -> Partner:
    record = Partner(tenant_id=tenant_id, title=data.title, default_language=data.default_language)
    session.add(record)
    await session.flush()
    return record


async def get(session: AsyncSession, tenant_id: uuid.UUID, partner_id: uuid.UUID) -> Partner | None:
    result = await session.execute(select(Partner).where(Partner.tenant_id == tenant_id, Partner.id == partner_id))
    return result.scalar_one_or_none()


async def list_page(
    session: AsyncSession, tenant_id: uuid.UUID, *, limit: int, cursor: str | None
) -> tuple[list[Partner], str | None]:
    query = select(Partner).where(Partner.tenant_id == tenant_id).order_by(Partner.id).limit(limit + 1)
    if (after := decode_cursor(cursor)) is not None:
        query = query.where(Partner.id > uuid.UUID(str(after.get("id"))))
    rows = list((await session.execute(query)).scalars())
    next_cursor = encode_cursor({"id": str(rows[limit - 1].id)}) if len(rows) > limit else None
    return rows[:limit], next_cursor
