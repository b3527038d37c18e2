"""Check a conversation against every enabled compliance profile; violations raise alerts for supervisors."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from cx_alerts.alerts.models import Alert
from cx_alerts.compliance.models import ComplianceProfile, ComplianceResult
from cx_alerts.compliance.schemas import ComplianceDefinition, Interval, Scorecard, ScorePoint
from cx_alerts.context import Ctx
from cx_alerts.notifications import service as notifications
from cx_alerts.org import service as org
from cx_alerts.org.models import OrgUnit
from cx_alerts.signals.service import Signal
from cx_common.db import new_id


def _has(text: str, phrases: list[str]) -> str | None:
    folded = text.casefold()
    for phrase in phrases:
        if phrase.casefold() in folded:
            return phrase
    return None


def check(definition: ComplianceDefinition, turns: list[dict[str, Any]]) -> tuple[float, list[dict[str, Any]]]:
    """(score in 0..1, violations) for one transcript."""
    agent = [t for t in sorted(turns, key=lambda t: t.get("seq", 0)) if t.get("speaker") == "agent"]
    customer = [t for t in turns if t.get("speaker") == "customer"]
    violations: list[dict[str, Any]] = []
    total = sum(i.weight for i in definition.required) + (
        definition.forbidden_weight if definition.forbidden_phrases else 0
    )
    lost = 0.0
    for item in definition.required:
        window = (
            agent[: item.within_turns]
            if item.where == "start"
            else agent[-item.within_turns :]
            if item.where == "end"
            else agent
        )
        if not any(_has(t.get("text", ""), item.phrases) for t in window):
            lost += item.weight
            violations.append({"kind": "missing_required", "item": item.name, "where": item.where})
    forbidden_hit = False
    for t in agent:
        if (phrase := _has(t.get("text", ""), definition.forbidden_phrases)) is not None:
            forbidden_hit = True
            violations.append({"kind": "forbidden_phrase", "item": phrase, "turn": t.get("seq")})
    if forbidden_hit:
        lost += definition.forbidden_weight
    for t in customer:
        if (phrase := _has(t.get("text", ""), definition.customer_risk_phrases)) is not None:
            violations.append({"kind": "customer_risk", "item": phrase, "turn": t.get("seq")})
    score = 1.0 if total == 0 else max(0.0, (total - lost) / total)
    return round(score, 4), violations


async def check_conversation(session: AsyncSession, ctx: Ctx, signal: Signal, org_path: list[str]) -> list[Alert]:
    from cx_alerts.alerts.flows import raise_alert

    profiles = (
        await session.execute(
            select(ComplianceProfile).where(
                ComplianceProfile.tenant_id == signal.tenant_id, ComplianceProfile.enabled.is_(True)
            )
        )
    ).scalars()
    alerts: list[Alert] = []
    for profile in profiles:
        definition = ComplianceDefinition.model_validate(profile.definition)
        if definition.channels and signal.channel not in definition.channels:
            continue
        score, violations = check(definition, signal.turns)
        passed = score >= definition.pass_score and not any(v["kind"] == "forbidden_phrase" for v in violations)
        inserted = (
            await session.execute(
                insert(ComplianceResult)
                .values(
                    id=new_id(),
                    tenant_id=signal.tenant_id,
                    profile_id=profile.id,
                    source_event_id=signal.event_id,
                    feedback_id=signal.feedback_id,
                    agent_id=signal.agent_id,
                    org_unit_id=signal.org_unit_id,
                    occurred_at=signal.occurred_at,
                    score=score,
                    passed=passed,
                    violations=violations,
                )
                .on_conflict_do_nothing()
                .returning(ComplianceResult.id)
            )
        ).first()
        if inserted is None or not violations:
            continue
        reason = f"{profile.name}: agent {signal.agent_id or '?'} score {score:.2f}; " + ", ".join(
            f"{v['kind']} {v['item']}" for v in violations
        )
        severity = "critical" if any(v["kind"] != "missing_required" for v in violations) else definition.severity
        alert = await raise_alert(session, ctx, signal, org_path, severity=severity, reason=reason, kind="compliance")
        supervisor, _ = await org.manager_for(session, signal.tenant_id, signal.org_unit_id)
        await notifications.notify(
            session,
            signal.tenant_id,
            [supervisor],
            kind="compliance",
            title=f"[{severity}] {profile.name}",
            template="compliance",
            params={"severity": severity, "profile": profile.name},
            body=reason,
            alert_id=alert.id,
        )
        alerts.append(alert)
    return alerts


def in_subtree(column: Any, tenant_id: uuid.UUID, unit_id: str) -> Any:
    """`column` names the unit `unit_id` or one below it (the local org projection knows the ancestors)."""
    below = select(OrgUnit.id).where(
        OrgUnit.tenant_id == tenant_id, or_(OrgUnit.id == unit_id, OrgUnit.ancestor_ids.contains([unit_id]))
    )
    return column.in_(below)


def period_start(moment: dt.datetime, interval: Interval) -> dt.date:
    day = moment.astimezone(dt.UTC).date()
    return day - dt.timedelta(days=day.weekday()) if interval == "week" else day


def _card(rows: list[ComplianceResult]) -> dict[str, Any]:
    violations: dict[str, int] = {}
    for row in rows:
        for v in row.violations:
            key = f"{v['kind']}:{v['item']}"
            violations[key] = violations.get(key, 0) + 1
    return {
        "conversations": len(rows),
        "average_score": round(sum(r.score for r in rows) / len(rows), 4),
        "pass_rate": round(sum(1 for r in rows if r.passed) / len(rows), 4),
        "violations": violations,
    }


async def scorecards(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    since: dt.datetime,
    until: dt.datetime,
    agent_id: str | None,
    org_unit_id: str | None = None,
    interval: Interval | None = None,
) -> list[Scorecard]:
    """Per agent over [since, until): conversations, average score, pass rate, violations by kind; with `interval`
    also the same figures per day or ISO week (UTC), oldest first. `org_unit_id`: only conversations of that unit and
    the units below it."""
    query = select(ComplianceResult).where(
        ComplianceResult.tenant_id == tenant_id,
        ComplianceResult.occurred_at >= since,
        ComplianceResult.occurred_at < until,
    )
    if agent_id:
        query = query.where(ComplianceResult.agent_id == agent_id)
    if org_unit_id:
        query = query.where(in_subtree(ComplianceResult.org_unit_id, tenant_id, org_unit_id))
    by_agent: dict[str, list[ComplianceResult]] = {}
    for row in (await session.execute(query.order_by(ComplianceResult.occurred_at))).scalars():
        by_agent.setdefault(row.agent_id, []).append(row)
    cards = []
    for agent, rows in sorted(by_agent.items()):
        trend: list[ScorePoint] = []
        if interval is not None:
            periods: dict[dt.date, list[ComplianceResult]] = {}
            for row in rows:
                periods.setdefault(period_start(row.occurred_at, interval), []).append(row)
            trend = [ScorePoint(period_start=p, **_card(items)) for p, items in sorted(periods.items())]
        cards.append(Scorecard(agent_id=agent, trend=trend, **_card(rows)))
    return cards
