import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cx_alerts.rules.models import AlertRule
from cx_alerts.rules.schemas import AlertRuleCreate
from cx_common.pagination import decode_cursor, encode_cursor


async def create(session: AsyncSession, tenant_id: uuid.UUID, data: AlertRuleCreate) -> AlertRule:
    record = AlertRule(tenant_id=tenant_id, title=data.title, default_language=data.default_language)
    session.add(record)
    await session.flush()
    return record


async def get(session: AsyncSession, tenant_id: uuid.UUID, rule_id: uuid.UUID) -> AlertRule | None:
    result = await session.execute(select(AlertRule).where(AlertRule.tenant_id == tenant_id, AlertRule.id == rule_id))
    return result.scalar_one_or_none()


async def list_page(
    session: AsyncSession, tenant_id: uuid.UUID, *, limit: int, cursor: str | None
) -> tuple[list[AlertRule], str | None]:
    query = select(AlertRule).where(AlertRule.tenant_id == tenant_id).order_by(AlertRule.id).limit(limit + 1)
    if (after := decode_cursor(cursor)) is not None:
        query = query.where(AlertRule.id > uuid.UUID(str(after.get("id"))))
    rows = list((await session.execute(query)).scalars())
    next_cursor = encode_cursor({"id": str(rows[limit - 1].id)}) if len(rows) > limit else None
    return rows[:limit], next_cursor
