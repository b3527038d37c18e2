"""What a set of events adds to the rollups, merged by key in memory and written with one statement per table.

The consumer applies a whole fetched batch of events in one transaction: the handlers add their increments here and
`flush` writes them — per-unit rollups, subtree totals, response facts, freshness — with multi-row upserts whose rows
are sorted by key (one lock order for every writer, so concurrent consumers do not deadlock on the hot rows).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from cx_gateway.analytics import subtree
from cx_gateway.analytics.models import (
    UNKNOWN_ORG,
    AspectRollup,
    Competitor,
    DailyRollup,
    Freshness,
    ResponseFact,
    SubtreeAspects,
    SubtreeDaily,
    SubtreeTerms,
    TermRollup,
)
from cx_gateway.org.models import OrgUnit

UNIT_DIMS = ("tenant_id", "day", "org_unit_id", "touchpoint", "stage", "channel")
DAILY_COUNTERS = subtree.counter_columns(SubtreeDaily)
POLARITIES = subtree.POLARITIES
MAX_PARAMS = 30_000  # asyncpg allows 32,767 bind parameters per statement


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


@dataclass
class Changes:
    units: dict[tuple[uuid.UUID, uuid.UUID], tuple[uuid.UUID, list[uuid.UUID]]] = field(default_factory=dict)
    competitors: dict[uuid.UUID, list[tuple[str, list[str]]]] = field(default_factory=dict)
    daily: dict[tuple[Any, ...], dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    aspects: dict[tuple[Any, ...], list[int]] = field(default_factory=dict)  # key + path, polarity → [level, n]
    terms: dict[tuple[Any, ...], list[int]] = field(default_factory=dict)  # key + kind, term → [mentions, negative]
    sub_daily: dict[tuple[Any, ...], dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    sub_aspects: dict[tuple[Any, ...], list[int]] = field(default_factory=dict)  # → [mentions, neg, neu, pos]
    sub_terms: dict[tuple[Any, ...], list[int]] = field(default_factory=dict)  # → [mentions, negative]
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    fresh: dict[uuid.UUID, list[Any]] = field(default_factory=dict)  # tenant → [latest occurred_at, events]

    # -- lookups (cached for the transaction) ------------------------------------------------------------------------

    async def prefetch(self, session: AsyncSession, wanted: Iterable[tuple[uuid.UUID, uuid.UUID]]) -> None:
        """Resolve many units at once (one query per tenant), locking their rows `FOR SHARE` (see subtree)."""
        by_tenant: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
        for tenant, org in wanted:
            if org != UNKNOWN_ORG and (tenant, org) not in self.units:
                by_tenant[tenant].add(org)
        for tenant, orgs in by_tenant.items():
            rows = await session.execute(
                select(OrgUnit.id, OrgUnit.path)
                .where(OrgUnit.tenant_id == tenant, OrgUnit.id.in_(sorted(orgs)))
                .order_by(OrgUnit.id)
                .with_for_update(read=True)
            )
            found = {unit_id: path for unit_id, path in rows.all()}
            for org in orgs:
                path = found.get(org)
                self.units[(tenant, org)] = (org, subtree.path_ids(path)) if path else (UNKNOWN_ORG, [UNKNOWN_ORG])

    async def resolve(
        self, session: AsyncSession, tenant: uuid.UUID, org: uuid.UUID
    ) -> tuple[uuid.UUID, list[uuid.UUID]]:
        """(unit the per-unit rollups record, units whose subtree totals include it)."""
        if org == UNKNOWN_ORG:
            return UNKNOWN_ORG, [UNKNOWN_ORG]
        if (tenant, org) not in self.units:
            self.units[(tenant, org)] = await subtree.resolve(session, tenant, org)
        return self.units[(tenant, org)]

    async def competitors_of(self, session: AsyncSession, tenant: uuid.UUID) -> list[tuple[str, list[str]]]:
        if tenant not in self.competitors:
            rows = await session.execute(
                select(Competitor.name, Competitor.aliases).where(Competitor.tenant_id == tenant)
            )
            self.competitors[tenant] = [
                (name, [a for a in json.loads(aliases or "[]") if isinstance(a, str)]) for name, aliases in rows.all()
            ]
        return self.competitors[tenant]

    # -- increments --------------------------------------------------------------------------------------------------

    def add_daily(self, dims: Mapping[str, Any], scopes: Sequence[uuid.UUID], counters: Mapping[str, float]) -> None:
        key = tuple(dims[d] for d in UNIT_DIMS)
        for name, value in counters.items():
            if value:
                self.daily[key][name] = self.daily[key].get(name, 0) + value
                for scope in scopes:
                    sub = self.sub_daily[(dims["tenant_id"], scope, dims["day"])]
                    sub[name] = sub.get(name, 0) + value

    def add_aspects(
        self, dims: Mapping[str, Any], scopes: Sequence[uuid.UUID], mentions: Iterable[tuple[str, int, str]]
    ) -> None:
        """`mentions`: distinct (path, level, polarity) of one feedback item, one mention each."""
        base = tuple(dims[d] for d in UNIT_DIMS)
        for path, level, polarity in mentions:
            row = self.aspects.setdefault((*base, path, polarity), [level, 0])
            row[1] += 1
            for scope in scopes:
                sub = self.sub_aspects.setdefault((dims["tenant_id"], scope, level, dims["day"], path), [0, 0, 0, 0])
                sub[0] += 1
                if polarity in POLARITIES:
                    sub[1 + POLARITIES.index(polarity)] += 1

    def add_terms(
        self,
        dims: Mapping[str, Any],
        scopes: Sequence[uuid.UUID],
        terms: Iterable[tuple[str, str]],
        negative: bool,
    ) -> None:
        """`terms`: distinct (kind, term) of one feedback item."""
        base = tuple(dims[d] for d in UNIT_DIMS)
        for kind, term in terms:
            row = self.terms.setdefault((*base, kind, term), [0, 0])
            row[0] += 1
            row[1] += int(negative)
            for scope in scopes:
                sub = self.sub_terms.setdefault((dims["tenant_id"], scope, kind, dims["day"], term), [0, 0])
                sub[0] += 1
                sub[1] += int(negative)

    def add_fact(self, row: Mapping[str, Any]) -> None:
        self.facts.setdefault(str(row["response_id"]), dict(row))

    def seen(self, tenant: uuid.UUID, occurred: dt.datetime) -> None:
        entry = self.fresh.setdefault(tenant, [occurred, 0])
        entry[0] = max(entry[0], occurred)
        entry[1] += 1

    # -- writing -----------------------------------------------------------------------------------------------------

    async def flush(self, session: AsyncSession) -> None:
        await _add(
            session,
            DailyRollup,
            UNIT_DIMS,
            [dict(zip(UNIT_DIMS, k, strict=True)) | _all(v) for k, v in sorted(self.daily.items(), key=_order)],
            DAILY_COUNTERS,
        )
        await _add(
            session,
            AspectRollup,
            (*UNIT_DIMS, "path", "polarity"),
            [
                dict(zip((*UNIT_DIMS, "path", "polarity"), k, strict=True)) | {"level": v[0], "mentions": v[1]}
                for k, v in sorted(self.aspects.items(), key=_order)
            ],
            ("mentions",),
        )
        await _add(
            session,
            TermRollup,
            (*UNIT_DIMS, "kind", "term"),
            [
                dict(zip((*UNIT_DIMS, "kind", "term"), k, strict=True)) | {"mentions": v[0], "negative": v[1]}
                for k, v in sorted(self.terms.items(), key=_order)
            ],
            ("mentions", "negative"),
        )
        sub_keys = ("tenant_id", "scope_id", "day")
        await _add(
            session,
            SubtreeDaily,
            sub_keys,
            [dict(zip(sub_keys, k, strict=True)) | _all(v) for k, v in sorted(self.sub_daily.items(), key=_order)],
            DAILY_COUNTERS,
        )
        aspect_keys = ("tenant_id", "scope_id", "level", "day", "path")
        await _add(
            session,
            SubtreeAspects,
            aspect_keys,
            [
                dict(zip(aspect_keys, k, strict=True)) | dict(zip(("mentions", *POLARITIES), v, strict=True))
                for k, v in sorted(self.sub_aspects.items(), key=_order)
            ],
            ("mentions", *POLARITIES),
        )
        term_keys = ("tenant_id", "scope_id", "kind", "day", "term")
        await _add(
            session,
            SubtreeTerms,
            term_keys,
            [
                dict(zip(term_keys, k, strict=True)) | {"mentions": v[0], "negative": v[1]}
                for k, v in sorted(self.sub_terms.items(), key=_order)
            ],
            ("mentions", "negative"),
        )
        facts = [self.facts[k] for k in sorted(self.facts)]
        for chunk in _chunks(facts):
            await session.execute(insert(_table(ResponseFact)).values(chunk).on_conflict_do_nothing())
        for tenant in sorted(self.fresh):
            occurred, events = self.fresh[tenant]
            table = _table(Freshness)
            stmt = insert(table).values(tenant_id=tenant, last_event_at=occurred, applied_at=func.now(), events=events)
            stmt = stmt.on_conflict_do_update(
                index_elements=["tenant_id"],
                set_={
                    "last_event_at": func.greatest(table.c.last_event_at, stmt.excluded.last_event_at),
                    "applied_at": stmt.excluded.applied_at,
                    "events": table.c.events + stmt.excluded.events,
                },
            )
            await session.execute(stmt)


def _all(counters: Mapping[str, float]) -> dict[str, float]:
    return {c: counters.get(c, 0) for c in DAILY_COUNTERS}


def _order(item: tuple[tuple[Any, ...], Any]) -> tuple[str, ...]:
    return tuple(str(k) for k in item[0])


def _chunks(rows: list[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
    if not rows:
        return
    size = max(1, MAX_PARAMS // max(1, len(rows[0])))
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


async def _add(
    session: AsyncSession, model: type[Any], keys: Sequence[str], rows: list[dict[str, Any]], counters: Sequence[str]
) -> None:
    """Insert the rows or add their counters to the existing ones."""
    table = _table(model)
    for chunk in _chunks(rows):
        stmt = insert(table).values(chunk)
        stmt = stmt.on_conflict_do_update(
            index_elements=list(keys), set_={c: table.c[c] + stmt.excluded[c] for c in counters}
        )
        await session.execute(stmt)
