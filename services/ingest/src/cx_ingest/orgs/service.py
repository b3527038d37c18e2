"""Org-unit scope: a principal sees its org unit and everything below it; no org unit = the whole tenant."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from cx.events.v1 import events_pb2
from cx_common.app import Runtime
from cx_common.auth import Principal
from cx_common.db import utcnow
from cx_common.events import EventConsumer
from cx_ingest.orgs.models import OrgUnit


def visible_units(principal: Principal) -> Select[Any] | None:
    """A subquery of the org unit ids the principal may see, or None for tenant-wide access."""
    org = principal.org_unit_id
    if not org:
        return None
    return select(OrgUnit.id).where(
        OrgUnit.tenant_id == principal.tenant_id,
        OrgUnit.deleted.is_(False),
        or_(OrgUnit.id == org, OrgUnit.ancestor_ids.contains([org])),
    )


async def apply_org_event(session: AsyncSession, envelope: events_pb2.Envelope) -> None:
    unit = envelope.org_unit_changed
    deleted = unit.deleted or envelope.type == "org.unit.deleted"
    values = {
        "tenant_id": uuid.UUID(envelope.tenant_id),
        "id": unit.org_unit_id,
        "parent_id": unit.parent_id,
        "ancestor_ids": list(unit.ancestor_ids),
        "name": unit.name,
        "deleted": deleted,
    }
    stmt = pg_insert(OrgUnit).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[OrgUnit.tenant_id, OrgUnit.id],
        set_={k: v for k, v in values.items() if k not in ("tenant_id", "id")} | {"updated_at": utcnow()},
    )
    await session.execute(stmt)


def org_consumer(runtime: Runtime) -> EventConsumer:
    assert runtime.bus is not None
    assert runtime.sessions is not None
    return EventConsumer(
        runtime.bus,
        runtime.sessions,
        durable="ingest-org-units",
        event_types=["org.unit.upserted", "org.unit.deleted"],
        handler=apply_org_event,
    )
