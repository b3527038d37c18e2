"""Rule storage (versioned) and matching."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cx_alerts.alerts.models import Alert
from cx_alerts.audit import service as audit
from cx_alerts.org import service as org
from cx_alerts.rules.conditions import (
    AllCondition,
    AnyCondition,
    AspectCounter,
    NotCondition,
    VolumeSpikeCondition,
    evaluate,
)
from cx_alerts.rules.models import AlertRule, AlertRuleVersion
from cx_alerts.rules.schemas import DryRunMatch, DryRunResult, RuleCreate, RuleDefinition, RuleUpdate
from cx_alerts.signals import service as signals
from cx_alerts.signals.service import Signal
from cx_common.db import new_id
from cx_common.pagination import cursor_uuid, encode_cursor


def snapshot(rule: AlertRule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "description": rule.description,
        "enabled": rule.enabled,
        "version": rule.version,
        "definition": rule.definition,
    }


async def check_references(session: AsyncSession, tenant_id: uuid.UUID, definition: RuleDefinition) -> None:
    """The org units of the scope and the users to notify must exist (422 naming the field otherwise)."""
    notify = definition.actions.notify
    await org.check_references(
        session,
        tenant_id,
        units=[(f"definition.scope.org_unit_ids.{i}", u) for i, u in enumerate(definition.scope.org_unit_ids)],
        users=[(f"definition.actions.notify.user_ids.{i}", u) for i, u in enumerate(notify.user_ids if notify else [])],
    )


async def create(session: AsyncSession, tenant_id: uuid.UUID, actor: audit.Actor, data: RuleCreate) -> AlertRule:
    await check_references(session, tenant_id, data.definition)
    definition = data.definition.model_dump(mode="json")
    rule = AlertRule(
        id=new_id(),
        tenant_id=tenant_id,
        name=data.name,
        description=data.description,
        trigger=data.definition.trigger,
        enabled=data.enabled,
        version=1,
        definition=definition,
        created_by=actor.id,
        updated_by=actor.id,
    )
    session.add(rule)
    await session.flush()
    session.add(
        AlertRuleVersion(rule_id=rule.id, version=1, name=rule.name, definition=definition, created_by=actor.id)
    )
    await audit.record(
        session, tenant_id, actor, entity_type="rule", entity_id=rule.id, action="created", after=snapshot(rule)
    )
    return rule


async def get(
    session: AsyncSession, tenant_id: uuid.UUID, rule_id: uuid.UUID, *, lock: bool = False
) -> AlertRule | None:
    query = select(AlertRule).where(AlertRule.tenant_id == tenant_id, AlertRule.id == rule_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def update(session: AsyncSession, rule: AlertRule, actor: audit.Actor, data: RuleUpdate) -> AlertRule:
    await check_references(session, rule.tenant_id, data.definition)
    before = snapshot(rule)
    definition = data.definition.model_dump(mode="json")
    rule.name = data.name
    rule.description = data.description
    rule.definition = definition
    rule.trigger = data.definition.trigger
    rule.version += 1
    rule.updated_by = actor.id
    session.add(
        AlertRuleVersion(
            rule_id=rule.id, version=rule.version, name=rule.name, definition=definition, created_by=actor.id
        )
    )
    await session.flush()
    await audit.record(
        session,
        rule.tenant_id,
        actor,
        entity_type="rule",
        entity_id=rule.id,
        action="updated",
        before=before,
        after=snapshot(rule),
    )
    return rule


async def set_enabled(session: AsyncSession, rule: AlertRule, actor: audit.Actor, enabled: bool) -> AlertRule:
    if rule.enabled == enabled:
        return rule
    before = snapshot(rule)
    rule.enabled = enabled
    rule.updated_by = actor.id
    await session.flush()
    await audit.record(
        session,
        rule.tenant_id,
        actor,
        entity_type="rule",
        entity_id=rule.id,
        action="enabled" if enabled else "disabled",
        before=before,
        after=snapshot(rule),
    )
    return rule


async def versions(session: AsyncSession, rule_id: uuid.UUID) -> list[AlertRuleVersion]:
    rows = await session.execute(
        select(AlertRuleVersion).where(AlertRuleVersion.rule_id == rule_id).order_by(AlertRuleVersion.version)
    )
    return list(rows.scalars())


async def list_page(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    limit: int,
    cursor: str | None,
    enabled: bool | None = None,
    trigger: str | None = None,
) -> tuple[list[AlertRule], str | None]:
    query = select(AlertRule).where(AlertRule.tenant_id == tenant_id)
    if enabled is not None:
        query = query.where(AlertRule.enabled.is_(enabled))
    if trigger:
        query = query.where(AlertRule.trigger == trigger)
    if (after := cursor_uuid(cursor)) is not None:
        query = query.where(AlertRule.id > after)
    rows = list((await session.execute(query.order_by(AlertRule.id).limit(limit + 1))).scalars())
    next_cursor = encode_cursor({"id": str(rows[limit - 1].id)}) if len(rows) > limit else None
    return rows[:limit], next_cursor


_PARSED: dict[tuple[uuid.UUID, int], RuleDefinition] = {}


def parsed(rule: AlertRule) -> RuleDefinition:
    """The rule's definition as a model; a version's definition never changes, so it is parsed once per process."""
    key = (rule.id, rule.version)
    definition = _PARSED.get(key)
    if definition is None:
        definition = RuleDefinition.model_validate(rule.definition)
        if len(_PARSED) >= 4096:
            _PARSED.clear()
        _PARSED[key] = definition
    return definition


async def enabled_rules(session: AsyncSession, tenant_id: uuid.UUID, trigger: str) -> list[AlertRule]:
    rows = await session.execute(
        select(AlertRule)
        .where(AlertRule.tenant_id == tenant_id, AlertRule.trigger == trigger, AlertRule.enabled.is_(True))
        .order_by(AlertRule.created_at, AlertRule.id)
    )
    return list(rows.scalars())


def in_scope(definition: RuleDefinition, signal: Signal, org_path: list[str]) -> bool:
    scope = definition.scope
    if scope.org_unit_ids and not set(scope.org_unit_ids) & set(org_path):
        return False
    if scope.touchpoint_ids and signal.touchpoint_id not in scope.touchpoint_ids:
        return False
    return not (scope.channels and signal.channel not in scope.channels)


def counter_for(session: AsyncSession, tenant_id: uuid.UUID) -> AspectCounter:
    async def count(key: str, since: dt.datetime, until: dt.datetime, org: str | None, negative: bool) -> int:
        return await signals.count_aspect(
            session, tenant_id, key, since=since, until=until, org_unit_id=org, negative_only=negative
        )

    return count


def spike_window(condition: object) -> int:
    """The longest volume-spike window (minutes) in a condition tree; 0 without one."""
    if isinstance(condition, VolumeSpikeCondition):
        return condition.window_minutes
    if isinstance(condition, AllCondition | AnyCondition):
        return max((spike_window(c) for c in condition.conditions), default=0)
    if isinstance(condition, NotCondition):
        return 0  # "no spike" is not a spike to report once
    return 0


async def spike_reported(
    session: AsyncSession, rule: AlertRule, definition: RuleDefinition, signal: Signal, now: dt.datetime
) -> bool:
    """A spike is one event: once the rule has alerted on it for an org unit, the further mentions inside the spike's
    window raise nothing more there."""
    window = spike_window(definition.condition)
    if window == 0:
        return False
    found = await session.execute(
        select(Alert.id)
        .where(
            Alert.rule_id == rule.id,
            Alert.tenant_id == signal.tenant_id,
            Alert.org_unit_id == signal.org_unit_id,
            Alert.raised_at > now - dt.timedelta(minutes=window),
            Alert.reason.contains("volume spike"),
        )
        .limit(1)
    )
    return found.first() is not None


async def match(
    session: AsyncSession, definition: RuleDefinition, signal: Signal, org_path: list[str]
) -> tuple[bool, list[str]]:
    if definition.trigger != signal.event_type or not in_scope(definition, signal, org_path):
        return False, []
    return await evaluate(definition.condition, signal, counter_for(session, signal.tenant_id))


async def dry_run(
    session: AsyncSession, tenant_id: uuid.UUID, definition: RuleDefinition, *, since: dt.datetime, limit: int
) -> DryRunResult:
    from cx_alerts.signals.models import RecentSignal

    rows = await session.execute(
        select(RecentSignal)
        .where(
            RecentSignal.tenant_id == tenant_id,
            RecentSignal.event_type == definition.trigger,
            RecentSignal.occurred_at >= since,
        )
        .order_by(RecentSignal.occurred_at)
        .limit(limit)
    )
    matches: list[DryRunMatch] = []
    last_ticket: dict[str, dt.datetime] = {}
    tickets = 0
    window = dt.timedelta(minutes=definition.grouping_window_minutes)
    evaluated = 0
    for row in rows.scalars():
        evaluated += 1
        signal = signals.from_stored(row)
        ok, reasons = await match(session, definition, signal, row.org_path)
        if not ok:
            continue
        matches.append(
            DryRunMatch(
                event_id=signal.event_id,
                occurred_at=signal.occurred_at,
                org_unit_id=signal.org_unit_id,
                customer_key=signal.customer_key,
                response_id=signal.response_id,
                feedback_id=signal.feedback_id,
                reasons=reasons,
            )
        )
        if definition.actions.open_ticket is not None:
            key = signal.customer_key
            opened = last_ticket.get(key) if key else None
            if opened is None or signal.occurred_at - opened > window:
                tickets += 1
                if key:
                    last_ticket[key] = signal.occurred_at
    return DryRunResult(evaluated=evaluated, matched=len(matches), would_open_tickets=tickets, matches=matches[:200])
