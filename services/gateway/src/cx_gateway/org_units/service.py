import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cx_common.pagination import decode_cursor, encode_cursor
from cx_gateway.org_units.models import OrgUnit
from cx_gateway.org_units.schemas import OrgUnitCreate


async def create(session: AsyncSession, tenant_id: uuid.UUID, data: OrgUnitCreate) -> OrgUnit:
    record = OrgUnit(tenant_id=tenant_id, title=data.title, default_language=data.default_language)
    session.add(record)
    await session.flush()
    return record


async def get(session: AsyncSession, tenant_id: uuid.UUID, org_unit_id: uuid.UUID) -> OrgUnit | None:
    result = await session.execute(select(OrgUnit).where(OrgUnit.tenant_id == tenant_id, OrgUnit.id == org_unit_id))
    return result.scalar_one_or_none()


async def list_page(
    session: AsyncSession, tenant_id: uuid.UUID, *, limit: int, cursor: str | None
) -> tuple[list[OrgUnit], str | None]:
    query = select(OrgUnit).where(OrgUnit.tenant_id == tenant_id).order_by(OrgUnit.id).limit(limit + 1)
    if (after := decode_cursor(cursor)) is not None:
        query = query.where(OrgUnit.id > uuid.UUID(str(after.get("id"))))
    rows = list((await session.execute(query)).scalars())
    next_cursor = encode_cursor({"id": str(rows[limit - 1].id)}) if len(rows) > limit else None
    return rows[:limit], next_cursor
