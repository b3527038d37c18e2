"""Local projections of the gateway's org tree, kept from `org.unit.upserted` / `org.unit.deleted` events.

Each service declares its own table (in its own schema, with the columns it needs, at least tenant_id, id,
ancestor_ids and deleted); these helpers fill it and answer the questions every service asks of it: the unit's path
from the root, and which units a principal may see (its own and everything below).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from cx.events.v1 import events_pb2
from cx_common.app import Runtime
from cx_common.auth import Principal
from cx_common.db import utcnow
from cx_common.events import EventConsumer

ORG_UNIT_EVENTS = ("org.unit.upserted", "org.unit.deleted")


def org_unit_values(tenant_id: uuid.UUID, change: events_pb2.OrgUnitChanged, *, deleted: bool) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "id": change.org_unit_id,
        "parent_id": change.parent_id or None,
        "name": change.name,
        "kind": change.kind,
        "code": change.code,
        "ancestor_ids": list(change.ancestor_ids),  # root first
        "timezone": change.timezone,
        "manager_user_id": change.manager_user_id or None,
        "deleted": deleted or change.deleted,
    }


async def upsert_org_unit(session: AsyncSession, model: Any, envelope: events_pb2.Envelope) -> None:
    """Insert or update the unit of an org event in `model`'s table, filling only the columns it has."""
    if not envelope.HasField("org_unit_changed"):
        return
    columns = model.__table__.columns
    values = org_unit_values(
        uuid.UUID(envelope.tenant_id), envelope.org_unit_changed, deleted=envelope.type == "org.unit.deleted"
    )
    row = {
        name: ("" if value is None and not columns[name].nullable else value)
        for name, value in values.items()
        if name in columns
    }
    update = {name: value for name, value in row.items() if name not in ("tenant_id", "id")}
    if "updated_at" in columns:
        update["updated_at"] = utcnow()
    stmt = insert(model).values(**row).on_conflict_do_update(index_elements=["tenant_id", "id"], set_=update)
    await session.execute(stmt)


def org_unit_consumer(runtime: Runtime, *, durable: str, model: Any) -> EventConsumer:
    """A durable consumer keeping `model`'s table in step with the gateway's org tree."""
    assert runtime.bus is not None
    assert runtime.sessions is not None

    async def handle(session: AsyncSession, envelope: events_pb2.Envelope) -> None:
        await upsert_org_unit(session, model, envelope)

    return EventConsumer(
        runtime.bus, runtime.sessions, durable=durable, event_types=list(ORG_UNIT_EVENTS), handler=handle
    )


async def unit_path(session: AsyncSession, model: Any, tenant_id: uuid.UUID, unit_id: str) -> list[str] | None:
    """Root-first ids from the root down to the unit itself; None when the unit is unknown or deleted."""
    unit = await session.get(model, (tenant_id, unit_id))
    if unit is None or unit.deleted:
        return None
    return [*unit.ancestor_ids, unit.id]


async def tree_known(session: AsyncSession, model: Any, tenant_id: uuid.UUID) -> bool:
    """Whether any unit of the tenant has been projected yet (before that, unknown ids cannot be judged)."""
    return await session.scalar(select(model.id).where(model.tenant_id == tenant_id).limit(1)) is not None


def visible_unit_ids(model: Any, principal: Principal) -> Select[Any] | None:
    """A subquery of the org unit ids the principal may see (its unit and the subtree), or None for tenant-wide."""
    org = principal.org_unit_id
    if not org:
        return None
    return select(model.id).where(
        model.tenant_id == principal.tenant_id,
        model.deleted.is_(False),
        or_(model.id == org, model.ancestor_ids.contains([org])),
    )


def subtree_filter(column: Any, model: Any, principal: Principal) -> Sequence[Any]:
    """WHERE clauses limiting `column` (an org unit id column) to what the principal may see; none when tenant-wide."""
    visible = visible_unit_ids(model, principal)
    return [] if visible is None else [column.in_(visible)]
