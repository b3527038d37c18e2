"""Org tree projection: apply events, walk the tree."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from cx.events.v1 import events_pb2
from cx_alerts.org.models import OrgUnit, OrgUser
from cx_common.errors import Problem


async def apply_unit(
    session: AsyncSession, tenant_id: uuid.UUID, event: events_pb2.OrgUnitChanged, deleted: bool
) -> None:
    values = {
        "tenant_id": tenant_id,
        "id": event.org_unit_id,
        "parent_id": event.parent_id or None,
        "name": event.name,
        "kind": event.kind,
        "code": event.code,
        "ancestor_ids": list(event.ancestor_ids),
        "timezone": event.timezone,
        "manager_user_id": event.manager_user_id or None,
        "deleted": deleted or event.deleted,
    }
    stmt = insert(OrgUnit).values(**values)
    update = {k: stmt.excluded[k] for k in values if k not in ("tenant_id", "id")}
    await session.execute(stmt.on_conflict_do_update(index_elements=["tenant_id", "id"], set_=update))


async def apply_user(session: AsyncSession, tenant_id: uuid.UUID, event: events_pb2.UserChanged, deleted: bool) -> None:
    values = {
        "tenant_id": tenant_id,
        "id": event.user_id,
        "org_unit_id": event.org_unit_id or None,
        "role": event.role,
        "display_name": event.display_name,
        "email": event.email,
        "locale": event.locale,
        "active": event.active and not deleted,
    }
    stmt = insert(OrgUser).values(**values)
    update = {k: stmt.excluded[k] for k in values if k not in ("tenant_id", "id")}
    await session.execute(stmt.on_conflict_do_update(index_elements=["tenant_id", "id"], set_=update))


async def get_unit(session: AsyncSession, tenant_id: uuid.UUID, unit_id: str | None) -> OrgUnit | None:
    if not unit_id:
        return None
    unit = await session.get(OrgUnit, (tenant_id, unit_id))
    return unit if unit is not None and not unit.deleted else None


async def get_user(session: AsyncSession, tenant_id: uuid.UUID, user_id: str | None) -> OrgUser | None:
    if not user_id:
        return None
    user = await session.get(OrgUser, (tenant_id, user_id))
    return user if user is not None and user.active else None


def path_of(unit: OrgUnit | None, unit_id: str | None) -> list[str]:
    """Root-first ids from the root down to the unit itself (just the id when the unit is not projected yet)."""
    if unit is not None:
        return [*unit.ancestor_ids, unit.id]
    return [unit_id] if unit_id else []


async def manager_for(
    session: AsyncSession, tenant_id: uuid.UUID, unit_id: str | None
) -> tuple[str | None, str | None]:
    """(owner user id, org unit id that owns) — the unit's manager, else the nearest ancestor that has one."""
    unit = await get_unit(session, tenant_id, unit_id)
    if unit is None:
        return None, unit_id
    if unit.manager_user_id:
        return unit.manager_user_id, unit.id
    for ancestor_id in reversed(unit.ancestor_ids):
        ancestor = await get_unit(session, tenant_id, ancestor_id)
        if ancestor is not None and ancestor.manager_user_id:
            return ancestor.manager_user_id, unit.id
    return None, unit.id


async def check_references(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    units: Sequence[tuple[str, str]] = (),
    users: Sequence[tuple[str, str]] = (),
) -> None:
    """422 naming every field (`(field, id)` pairs) that refers to an org unit or user the tenant's projected tree
    does not have (or has deleted/deactivated). Until the first unit (user) of a tenant has been projected the org
    events are still on their way, and nothing is refused."""
    errors: list[dict[str, str]] = []
    if units:
        ids = [uid for _, uid in units]
        known = set(
            (
                await session.execute(
                    select(OrgUnit.id).where(
                        OrgUnit.tenant_id == tenant_id, OrgUnit.id.in_(ids), OrgUnit.deleted.is_(False)
                    )
                )
            ).scalars()
        )
        if len(known) < len(set(ids)) and await _any(session, OrgUnit, tenant_id):
            errors += [
                {"field": f, "message": f"unknown org unit {uid}", "type": "unknown"}
                for f, uid in units
                if uid not in known
            ]
    if users:
        ids = [uid for _, uid in users]
        known = set(
            (
                await session.execute(
                    select(OrgUser.id).where(
                        OrgUser.tenant_id == tenant_id, OrgUser.id.in_(ids), OrgUser.active.is_(True)
                    )
                )
            ).scalars()
        )
        if len(known) < len(set(ids)) and await _any(session, OrgUser, tenant_id):
            errors += [
                {"field": f, "message": f"unknown or inactive user {uid}", "type": "unknown"}
                for f, uid in users
                if uid not in known
            ]
    if errors:
        raise Problem(
            422,
            "; ".join(f"{e['field']}: {e['message']}" for e in errors),
            title="Validation failed",
            errors=errors,
        )


async def _any(session: AsyncSession, model: type[OrgUnit] | type[OrgUser], tenant_id: uuid.UUID) -> bool:
    return (await session.execute(select(model.id).where(model.tenant_id == tenant_id).limit(1))).first() is not None


async def list_units(session: AsyncSession, tenant_id: uuid.UUID) -> list[OrgUnit]:
    rows = await session.execute(
        select(OrgUnit).where(OrgUnit.tenant_id == tenant_id, OrgUnit.deleted.is_(False)).order_by(OrgUnit.id)
    )
    return list(rows.scalars())
