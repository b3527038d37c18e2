import uuid

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from cx.events.v1 import events_pb2
from cx_common.errors import Problem
from cx_survey.orgs.models import OrgUnit


async def apply_change(
    session: AsyncSession, tenant_id: uuid.UUID, change: events_pb2.OrgUnitChanged, deleted: bool
) -> None:
    values = {
        "tenant_id": tenant_id,
        "id": change.org_unit_id,
        "parent_id": change.parent_id or None,
        "name": change.name,
        "kind": change.kind,
        "ancestor_ids": list(change.ancestor_ids),
        "deleted": deleted or change.deleted,
    }
    stmt = insert(OrgUnit).values(**values)
    update = {k: stmt.excluded[k] for k in ("parent_id", "name", "kind", "ancestor_ids", "deleted")}
    await session.execute(stmt.on_conflict_do_update(index_elements=["tenant_id", "id"], set_=update))


async def path_of(session: AsyncSession, tenant_id: uuid.UUID, org_unit_id: str | None, *, field: str) -> list[str]:
    """The unit's path (root first, unit last); unknown/deleted units are refused once the tenant's tree is known."""
    if not org_unit_id:
        return []
    unit = await session.get(OrgUnit, (tenant_id, org_unit_id))
    if unit is not None and not unit.deleted:
        return [*unit.ancestor_ids, unit.id]
    tree_known = await session.scalar(select(OrgUnit.id).where(OrgUnit.tenant_id == tenant_id).limit(1))
    if tree_known is not None:
        raise Problem(
            422,
            f"{field}: unknown org unit {org_unit_id}",
            field=field,
            errors=[{"field": field, "message": "unknown org unit"}],
        )
    return [org_unit_id]
