"""Subtree totals (`rollup_subtree_*`): for every org unit, the sum of what was recorded on it and everywhere below.

The projection adds each event to the per-unit rollups and, in the same transaction (`changes.py`), to the subtree
rows of the unit and each of its ancestors, so a dashboard for HQ, a region or a store reads that one unit's
rows instead of aggregating every store's. The org tree can change: a move subtracts the moved unit's subtree totals
from the ancestors it leaves and adds them to those it joins; a deleted (leaf) unit's totals leave its ancestors.
`rebuild` derives everything from the per-unit rollups (bulk loads, repairs) and must agree with the incremental path.

Concurrency: the projection reads the unit's path `FOR SHARE`; a move updates those rows (exclusive), so an event
for a unit being moved is applied either wholly before the move (and moved with it) or wholly after (to the new
ancestors).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import CTE, Table, Uuid, and_, delete, func, literal, select, true, union_all
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from cx_gateway.analytics.models import (
    UNKNOWN_ORG,
    AspectRollup,
    DailyRollup,
    SubtreeAspects,
    SubtreeDaily,
    SubtreeTerms,
    TermRollup,
)
from cx_gateway.org.models import OrgUnit

TABLES: tuple[type[SubtreeDaily] | type[SubtreeAspects] | type[SubtreeTerms], ...] = (
    SubtreeDaily,
    SubtreeAspects,
    SubtreeTerms,
)
POLARITIES = ("negative", "neutral", "positive")


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


def key_columns(model: type[Any]) -> list[str]:
    return [c.name for c in _table(model).primary_key.columns]


def counter_columns(model: type[Any]) -> list[str]:
    keys = set(key_columns(model))
    return [c.name for c in _table(model).columns if c.name not in keys]


def int_counter_columns(model: type[Any]) -> list[str]:
    return [c for c in counter_columns(model) if not c.endswith("_sum")]


def path_ids(path: str) -> list[uuid.UUID]:
    """`/<root>/<...>/<unit>/` → [root, ..., unit]."""
    return [uuid.UUID(p) for p in path.strip("/").split("/") if p]


async def resolve(session: AsyncSession, tenant: uuid.UUID, org: uuid.UUID) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """(unit the per-unit rollups record, units whose subtree totals include it): the unit and its ancestors, root
    first. A unit the tenant does not have counts as UNKNOWN_ORG (seen by tenant-wide viewers only)."""
    if org == UNKNOWN_ORG:
        return UNKNOWN_ORG, [UNKNOWN_ORG]
    path = await session.scalar(
        select(OrgUnit.path).where(OrgUnit.tenant_id == tenant, OrgUnit.id == org).with_for_update(read=True)
    )
    if path is None:
        return UNKNOWN_ORG, [UNKNOWN_ORG]
    return org, path_ids(path)


# -- org tree changes ------------------------------------------------------------------------------------------------


async def _shift(session: AsyncSession, tenant: uuid.UUID, source: uuid.UUID, target: uuid.UUID, sign: int) -> None:
    """Add (sign 1) or subtract (sign -1) every subtree row of `source` to/from the rows of `target`."""
    for model in TABLES:
        table = _table(model)
        keys = [k for k in key_columns(model) if k not in ("tenant_id", "scope_id")]
        counters = counter_columns(model)
        rows = select(
            table.c.tenant_id,
            literal(target, table.c.scope_id.type).label("scope_id"),
            *(table.c[k] for k in keys),
            *((table.c[c] * sign).label(c) for c in counters),
        ).where(table.c.tenant_id == tenant, table.c.scope_id == source)
        stmt = insert(table).from_select(["tenant_id", "scope_id", *keys, *counters], rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=key_columns(model), set_={c: table.c[c] + stmt.excluded[c] for c in counters}
        )
        await session.execute(stmt)


async def _drop_empty(session: AsyncSession, tenant: uuid.UUID, scopes: Sequence[uuid.UUID]) -> None:
    """Rows whose counters all went to zero (what a scope no longer holds) would list as empty days/terms."""
    if not scopes:
        return
    for model in TABLES:
        table = _table(model)
        zero = and_(*(table.c[c] == 0 for c in int_counter_columns(model)))
        await session.execute(delete(table).where(table.c.tenant_id == tenant, table.c.scope_id.in_(scopes), zero))


async def moved(
    session: AsyncSession,
    tenant: uuid.UUID,
    unit_id: uuid.UUID,
    old_ancestors: Sequence[uuid.UUID],
    new_ancestors: Sequence[uuid.UUID],
) -> None:
    """`unit_id` (with its whole subtree) moved from under `old_ancestors` to under `new_ancestors`."""
    left = [a for a in old_ancestors if a not in new_ancestors]
    joined = [a for a in new_ancestors if a not in old_ancestors]
    for target in joined:
        await _shift(session, tenant, unit_id, target, 1)
    for target in left:
        await _shift(session, tenant, unit_id, target, -1)
    await _drop_empty(session, tenant, left)


async def deleted(session: AsyncSession, tenant: uuid.UUID, unit_id: uuid.UUID, ancestors: Sequence[uuid.UUID]) -> None:
    """A (leaf) unit is gone: what was recorded on it leaves its ancestors' totals, as it leaves the per-unit
    queries (which only see units that exist)."""
    await moved(session, tenant, unit_id, ancestors, [])
    for model in TABLES:
        table = _table(model)
        await session.execute(delete(table).where(table.c.tenant_id == tenant, table.c.scope_id == unit_id))


# -- from the per-unit rollups ---------------------------------------------------------------------------------------


def _scopes(tenant: uuid.UUID) -> CTE:
    """(unit_id, scope_id) for every unit of the tenant and each unit on its path, plus UNKNOWN_ORG for itself."""
    units = _table(OrgUnit)
    part = func.unnest(func.string_to_array(func.btrim(units.c.path, "/"), "/")).table_valued("scope").render_derived()
    known = (
        select(units.c.id.label("unit_id"), sa.cast(part.c.scope, Uuid).label("scope_id"))
        .select_from(units.join(part, true()))
        .where(units.c.tenant_id == tenant)
    )
    unknown = select(literal(UNKNOWN_ORG, Uuid).label("unit_id"), literal(UNKNOWN_ORG, Uuid).label("scope_id"))
    return union_all(known, unknown).cte("scopes")


def _rebuild_statements(tenant: uuid.UUID) -> list[Any]:
    scopes = _scopes(tenant)
    statements = []
    daily = _table(DailyRollup)
    names = counter_columns(SubtreeDaily)
    statements.append(
        insert(_table(SubtreeDaily)).from_select(
            ["tenant_id", "scope_id", "day", *names],
            select(daily.c.tenant_id, scopes.c.scope_id, daily.c.day, *(func.sum(daily.c[c]) for c in names))
            .join_from(daily, scopes, scopes.c.unit_id == daily.c.org_unit_id)
            .where(daily.c.tenant_id == tenant)
            .group_by(daily.c.tenant_id, scopes.c.scope_id, daily.c.day),
        )
    )
    aspects = _table(AspectRollup)
    statements.append(
        insert(_table(SubtreeAspects)).from_select(
            ["tenant_id", "scope_id", "level", "day", "path", "mentions", *POLARITIES],
            select(
                aspects.c.tenant_id,
                scopes.c.scope_id,
                aspects.c.level,
                aspects.c.day,
                aspects.c.path,
                func.sum(aspects.c.mentions),
                *(func.coalesce(func.sum(aspects.c.mentions).filter(aspects.c.polarity == p), 0) for p in POLARITIES),
            )
            .join_from(aspects, scopes, scopes.c.unit_id == aspects.c.org_unit_id)
            .where(aspects.c.tenant_id == tenant)
            .group_by(aspects.c.tenant_id, scopes.c.scope_id, aspects.c.level, aspects.c.day, aspects.c.path),
        )
    )
    terms = _table(TermRollup)
    statements.append(
        insert(_table(SubtreeTerms)).from_select(
            ["tenant_id", "scope_id", "kind", "day", "term", "mentions", "negative"],
            select(
                terms.c.tenant_id,
                scopes.c.scope_id,
                terms.c.kind,
                terms.c.day,
                terms.c.term,
                func.sum(terms.c.mentions),
                func.sum(terms.c.negative),
            )
            .join_from(terms, scopes, scopes.c.unit_id == terms.c.org_unit_id)
            .where(terms.c.tenant_id == tenant)
            .group_by(terms.c.tenant_id, scopes.c.scope_id, terms.c.kind, terms.c.day, terms.c.term),
        )
    )
    return statements


async def rebuild(session: AsyncSession, tenant: uuid.UUID) -> None:
    """Recompute the tenant's subtree totals from its per-unit rollups (after a bulk load; for repairs)."""
    for model in TABLES:
        table = _table(model)
        await session.execute(delete(table).where(table.c.tenant_id == tenant))
    for statement in _rebuild_statements(tenant):
        await session.execute(statement)
