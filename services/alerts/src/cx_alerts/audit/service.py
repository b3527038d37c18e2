"""Write and read the audit trail. Entries of a tenant form a SHA-256 chain, so a rewritten or removed entry is
detectable (`verify_chain`). `record` stages an entry in the session; when the transaction commits, its entries are
chained under a transaction-scoped advisory lock of the tenant and written in one statement."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, String, and_, cast, event, insert, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from cx_alerts.alerts.models import Alert
from cx_alerts.audit.models import AuditEntry
from cx_alerts.org.models import OrgUnit
from cx_alerts.tasks.models import ImprovementTask
from cx_alerts.tickets.models import Ticket
from cx_common.auth import Principal
from cx_common.context import current_request_id
from cx_common.pagination import cursor_value, encode_cursor

GENESIS = "0" * 64


@dataclass(frozen=True)
class Actor:
    type: str  # user | rule | system
    id: str

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        return cls("user", principal.user_id)


SYSTEM_SLA = Actor("system", "sla-scheduler")


def _canonical(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def entry_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def _fields(values: dict[str, Any]) -> dict[str, Any]:
    """What the hash covers (everything but the row id and the hashes)."""
    return {
        "tenant_id": str(values["tenant_id"]),
        "occurred_at": values["occurred_at"].astimezone(dt.UTC).isoformat(),
        **{k: values[k] for k in ("actor_type", "actor_id", "entity_type", "entity_id", "action", "before", "after")},
        "request_id": values["request_id"],
    }


def _hashed_fields(entry: AuditEntry) -> dict[str, Any]:
    return _fields({c: getattr(entry, c) for c in _HASHED})


_HASHED = (
    "tenant_id",
    "occurred_at",
    "actor_type",
    "actor_id",
    "entity_type",
    "entity_id",
    "action",
    "before",
    "after",
    "request_id",
)


async def record(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    actor: Actor,
    *,
    entity_type: str,
    entity_id: object,
    action: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Stage an entry; the transaction's entries are chained and written when it commits (nothing on rollback)."""
    pending: list[dict[str, Any]] = session.info.setdefault(_PENDING, [])
    pending.append(
        {
            "tenant_id": tenant_id,
            "actor_type": actor.type,
            "actor_id": actor.id,
            "entity_type": entity_type,
            "entity_id": str(entity_id),
            "action": action,
            "before": _canonical(before) if before is not None else None,
            "after": _canonical(after) if after is not None else None,
            "request_id": current_request_id(),
        }
    )


_PENDING = "cx_alerts_audit_pending"
_LOCK = text("SELECT pg_advisory_xact_lock(hashtext('audit:' || :tenant))")
_HEAD = text(
    "SELECT (SELECT hash FROM audit_log WHERE tenant_id = :tenant ORDER BY id DESC LIMIT 1) AS head, "
    "clock_timestamp() AS now"
)


def _write_pending(session: Session) -> None:
    """At commit: per tenant, one advisory lock (writers of a tenant queue only for this last step), one read of the
    chain's head and one multi-row insert, in the order the entries were recorded."""
    pending: list[dict[str, Any]] = session.info.pop(_PENDING, None) or []
    for tenant_id in sorted({e["tenant_id"] for e in pending}, key=str):
        session.execute(_LOCK, {"tenant": str(tenant_id)})
        head = session.execute(_HEAD, {"tenant": tenant_id}).one()
        prev = head.head or GENESIS
        rows = []
        for entry in (e for e in pending if e["tenant_id"] == tenant_id):
            row = {**entry, "occurred_at": head.now, "prev_hash": prev}
            row["hash"] = entry_hash(prev, _fields(row))
            prev = row["hash"]
            rows.append(row)
        session.execute(insert(AuditEntry), rows)


def _discard_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


event.listen(Session, "before_commit", _write_pending)
event.listen(Session, "after_rollback", _discard_pending)


async def list_page(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    limit: int,
    cursor: str | None,
    entity_type: str | None = None,
    entity_id: str | None = None,
    actor_id: str | None = None,
    action: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    visible_to: str | None = None,
) -> tuple[list[AuditEntry], str | None]:
    """Entries of the tenant, oldest first. With `visible_to` (the caller's org unit) only entries about what that
    unit's subtree may see: its tickets, alerts and tasks, and the tenant's configuration (rules, SLA policies,
    calendars, channels…) only when the unit is the root of the org tree."""
    query = select(AuditEntry).where(AuditEntry.tenant_id == tenant_id)
    if visible_to is not None:
        query = query.where(await _visible(session, tenant_id, visible_to))
    if entity_type:
        query = query.where(AuditEntry.entity_type == entity_type)
    if entity_id:
        query = query.where(AuditEntry.entity_id == entity_id)
    if actor_id:
        query = query.where(AuditEntry.actor_id == actor_id)
    if action:
        query = query.where(AuditEntry.action == action)
    if since:
        query = query.where(AuditEntry.occurred_at >= since)
    if until:
        query = query.where(AuditEntry.occurred_at < until)
    if (after := cursor_value(cursor, int)) is not None:
        query = query.where(AuditEntry.id > after)
    rows = list((await session.execute(query.order_by(AuditEntry.id).limit(limit + 1))).scalars())
    next_cursor = encode_cursor({"id": rows[limit - 1].id}) if len(rows) > limit else None
    return rows[:limit], next_cursor


SCOPED_ENTITIES = ("ticket", "alert", "task")


async def _visible(session: AsyncSession, tenant_id: uuid.UUID, unit_id: str) -> ColumnElement[bool]:
    def ids(model: type[Ticket] | type[Alert], path: Any) -> Any:
        return select(cast(model.id, String)).where(model.tenant_id == tenant_id, path.contains([unit_id]))

    conditions = [
        and_(AuditEntry.entity_type == "ticket", AuditEntry.entity_id.in_(ids(Ticket, Ticket.org_path))),
        and_(AuditEntry.entity_type == "alert", AuditEntry.entity_id.in_(ids(Alert, Alert.org_path))),
        and_(
            AuditEntry.entity_type == "task",
            AuditEntry.entity_id.in_(
                select(cast(ImprovementTask.id, String)).where(
                    ImprovementTask.tenant_id == tenant_id, ImprovementTask.department_path.contains([unit_id])
                )
            ),
        ),
    ]
    unit = await session.get(OrgUnit, (tenant_id, unit_id))
    if unit is not None and not unit.parent_id:  # the root: tenant-wide configuration too
        conditions.append(AuditEntry.entity_type.not_in(SCOPED_ENTITIES))
    return or_(*conditions)


async def verify_chain(session: AsyncSession, tenant_id: uuid.UUID) -> tuple[bool, int, int | None]:
    """(intact, entries checked, id of the first broken entry)."""
    prev = GENESIS
    checked = 0
    result = await session.stream_scalars(
        select(AuditEntry).where(AuditEntry.tenant_id == tenant_id).order_by(AuditEntry.id)
    )
    async for entry in result:
        checked += 1
        if entry.prev_hash != prev or entry_hash(prev, _hashed_fields(entry)) != entry.hash:
            return False, checked, entry.id
        prev = entry.hash
    return True, checked, None
