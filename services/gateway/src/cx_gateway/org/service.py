"""Org tree operations. Every change publishes `org.unit.upserted` / `org.unit.deleted` in the same transaction."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cx.events.v1 import events_pb2
from cx_common.auth import Principal
from cx_common.errors import Problem, conflict, not_found
from cx_common.events import add_event
from cx_common.pagination import decode_cursor, encode_cursor
from cx_gateway.analytics import subtree
from cx_gateway.org.models import OrgUnit
from cx_gateway.org.schemas import OrgTreeNode, OrgUnitCreate, OrgUnitRead, OrgUnitUpdate

SOURCE = "gateway"


def ancestor_ids(unit: OrgUnit) -> list[uuid.UUID]:
    """Root first, excluding the unit itself."""
    return [uuid.UUID(p) for p in unit.path.strip("/").split("/")[:-1] if p]


def to_read(unit: OrgUnit) -> OrgUnitRead:
    return OrgUnitRead(
        id=unit.id,
        parent_id=unit.parent_id,
        name=unit.name,
        code=unit.code,
        kind=unit.kind,
        timezone=unit.timezone,
        depth=unit.depth,
        ancestor_ids=ancestor_ids(unit),
        attributes=json.loads(unit.attributes or "{}"),
        manager_user_id=unit.manager_user_id,
        created_at=unit.created_at,
    )


@dataclass(frozen=True)
class OrgScope:
    """What a principal may see: the subtree under `root_path` of its tenant (`root_path` None = whole tenant)."""

    tenant_id: uuid.UUID
    root_id: uuid.UUID | None
    root_path: str | None

    def contains(self, unit: OrgUnit) -> bool:
        return unit.tenant_id == self.tenant_id and (self.root_path is None or unit.path.startswith(self.root_path))

    def unit_ids_query(self) -> Select[uuid.UUID]:
        """A SELECT of the ids of every unit in scope (for IN clauses)."""
        query = select(OrgUnit.id).where(OrgUnit.tenant_id == self.tenant_id)
        if self.root_path is not None:
            query = query.where(OrgUnit.path.startswith(self.root_path, autoescape=True))
        return query


async def scope_of(session: AsyncSession, principal: Principal) -> OrgScope:
    """The principal's org scope. A token without org claim sees the whole tenant only as owner/admin."""
    if principal.org_unit_id:
        try:
            unit_id = uuid.UUID(str(principal.org_unit_id))
        except ValueError as exc:
            raise Problem(403, "token carries an invalid org unit") from exc
        unit = await get(session, principal.tenant_id, unit_id)
        if unit is None:
            raise Problem(403, "the org unit of this token no longer exists")
        return OrgScope(principal.tenant_id, unit.id, unit.path)
    if principal.role in ("owner", "admin"):
        return OrgScope(principal.tenant_id, None, None)
    raise Problem(403, "token carries no org unit")


async def get(session: AsyncSession, tenant_id: uuid.UUID, unit_id: uuid.UUID) -> OrgUnit | None:
    result = await session.execute(select(OrgUnit).where(OrgUnit.tenant_id == tenant_id, OrgUnit.id == unit_id))
    return result.scalar_one_or_none()


async def get_visible(session: AsyncSession, scope: OrgScope, unit_id: uuid.UUID) -> OrgUnit:
    """The unit if it is in scope; 404 otherwise (not 403: existence is not leaked)."""
    unit = await get(session, scope.tenant_id, unit_id)
    if unit is None or not scope.contains(unit):
        raise not_found("org unit", unit_id)
    return unit


async def publish(session: AsyncSession, unit: OrgUnit, subject_prefix: str, *, deleted: bool = False) -> None:
    await add_event(
        session,
        tenant_id=unit.tenant_id,
        event_type="org.unit.deleted" if deleted else "org.unit.upserted",
        payload=events_pb2.OrgUnitChanged(
            org_unit_id=str(unit.id),
            parent_id=str(unit.parent_id or ""),
            name=unit.name,
            kind=unit.kind,
            ancestor_ids=[str(a) for a in ancestor_ids(unit)],
            timezone=unit.timezone,
            manager_user_id=str(unit.manager_user_id or ""),
            deleted=deleted,
            code=unit.code,
        ),
        source=SOURCE,
        subject_prefix=subject_prefix,
    )


async def create(
    session: AsyncSession, tenant_id: uuid.UUID, data: OrgUnitCreate, subject_prefix: str, scope: OrgScope | None
) -> OrgUnit:
    if data.parent_id is None:
        has_root = await session.scalar(
            select(func.count()).select_from(OrgUnit).where(OrgUnit.tenant_id == tenant_id, OrgUnit.parent_id.is_(None))
        )
        if has_root or (scope is not None and scope.root_path is not None):
            raise Problem(422, "parent_id: required (the tenant already has a root unit)", field="parent_id")
        parent_path, depth = "/", 0
    else:
        parent = await (
            get_visible(session, scope, data.parent_id) if scope else get(session, tenant_id, data.parent_id)
        )
        if parent is None:
            raise not_found("org unit", data.parent_id)
        parent_path, depth = parent.path, parent.depth + 1
    if await session.scalar(select(OrgUnit.id).where(OrgUnit.tenant_id == tenant_id, OrgUnit.code == data.code)):
        raise conflict(f"code: an org unit with code {data.code!r} exists", field="code")
    unit_id = uuid.uuid4()
    unit = OrgUnit(
        id=unit_id,
        tenant_id=tenant_id,
        parent_id=data.parent_id,
        name=data.name,
        code=data.code,
        kind=data.kind,
        timezone=data.timezone,
        path=f"{parent_path}{unit_id}/",
        depth=depth,
        attributes=json.dumps(data.attributes, ensure_ascii=False),
    )
    session.add(unit)
    await session.flush()
    await session.refresh(unit)
    await publish(session, unit, subject_prefix)
    return unit


async def update_unit(
    session: AsyncSession, scope: OrgScope, unit: OrgUnit, data: OrgUnitUpdate, subject_prefix: str
) -> OrgUnit:
    fields = data.model_fields_set
    if "name" in fields and data.name:
        unit.name = data.name
    if "kind" in fields and data.kind:
        unit.kind = data.kind
    if "timezone" in fields and data.timezone:
        unit.timezone = data.timezone
    if "attributes" in fields and data.attributes is not None:
        unit.attributes = json.dumps(data.attributes, ensure_ascii=False)
    if "manager_user_id" in fields:
        unit.manager_user_id = data.manager_user_id
    moved: list[OrgUnit] = []
    if "parent_id" in fields and data.parent_id is not None and data.parent_id != unit.parent_id:
        if scope.root_id == unit.id:
            raise Problem(422, "parent_id: cannot move the unit your own scope starts at", field="parent_id")
        new_parent = await get_visible(session, scope, data.parent_id)
        if new_parent.path.startswith(unit.path):
            raise Problem(422, "parent_id: cannot move a unit below itself", field="parent_id")
        old_path, new_path = unit.path, f"{new_parent.path}{unit.id}/"
        old_ancestors = ancestor_ids(unit)
        delta = new_parent.depth + 1 - unit.depth
        # lock the moved units in id order first: the read model's consumer takes them (FOR SHARE) in the same order
        await session.execute(
            select(OrgUnit.id)
            .where(OrgUnit.tenant_id == unit.tenant_id, OrgUnit.path.startswith(old_path, autoescape=True))
            .order_by(OrgUnit.id)
            .with_for_update()
        )
        await session.execute(
            update(OrgUnit)
            .where(OrgUnit.tenant_id == unit.tenant_id, OrgUnit.path.startswith(old_path, autoescape=True))
            .values(path=new_path + func.substr(OrgUnit.path, len(old_path) + 1), depth=OrgUnit.depth + delta)
            .execution_options(synchronize_session=False)
        )
        unit.parent_id = new_parent.id
        await session.flush()
        # after the UPDATE above: events for units being moved wait for this transaction (see analytics.subtree)
        await subtree.moved(session, unit.tenant_id, unit.id, old_ancestors, subtree.path_ids(new_parent.path))
        moved = list(
            (
                await session.execute(
                    select(OrgUnit).where(
                        OrgUnit.tenant_id == unit.tenant_id,
                        OrgUnit.path.startswith(new_path, autoescape=True),
                        OrgUnit.id != unit.id,
                    )
                )
            ).scalars()
        )
        for m in moved:
            await session.refresh(m)
    await session.flush()
    await session.refresh(unit)
    await publish(session, unit, subject_prefix)
    for m in moved:
        await publish(session, m, subject_prefix)
    return unit


async def delete_unit(session: AsyncSession, scope: OrgScope, unit: OrgUnit, subject_prefix: str) -> None:
    if scope.root_id == unit.id:
        raise Problem(409, "cannot delete the unit your own scope starts at")
    children = await session.scalar(select(func.count()).select_from(OrgUnit).where(OrgUnit.parent_id == unit.id))
    if children:
        raise conflict("org unit has child units; move or delete them first")
    await publish(session, unit, subject_prefix, deleted=True)
    # lock first: an event for this unit lands wholly before (and leaves with it) or finds the unit gone
    await session.execute(select(OrgUnit.id).where(OrgUnit.id == unit.id).with_for_update())
    await subtree.deleted(session, unit.tenant_id, unit.id, ancestor_ids(unit))
    await session.delete(unit)
    await session.flush()


async def list_page(
    session: AsyncSession, scope: OrgScope, *, limit: int, cursor: str | None, parent_id: uuid.UUID | None = None
) -> tuple[list[OrgUnit], str | None]:
    query = select(OrgUnit).where(OrgUnit.id.in_(scope.unit_ids_query())).order_by(OrgUnit.path).limit(limit + 1)
    if parent_id is not None:
        await get_visible(session, scope, parent_id)  # a parent outside the caller's subtree: 404, like any unit
        query = query.where(OrgUnit.parent_id == parent_id)
    if (after := decode_cursor(cursor)) is not None:
        query = query.where(OrgUnit.path > str(after.get("path", "")))
    rows = list((await session.execute(query)).scalars())
    next_cursor = encode_cursor({"path": rows[limit - 1].path}) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def tree(session: AsyncSession, scope: OrgScope) -> list[OrgTreeNode]:
    rows = list(
        (
            await session.execute(select(OrgUnit).where(OrgUnit.id.in_(scope.unit_ids_query())).order_by(OrgUnit.path))
        ).scalars()
    )
    nodes = {r.id: OrgTreeNode(id=r.id, name=r.name, code=r.code, kind=r.kind) for r in rows}
    roots: list[OrgTreeNode] = []
    for r in rows:
        parent = nodes.get(r.parent_id) if r.parent_id else None
        (parent.children if parent is not None else roots).append(nodes[r.id])
    return roots
