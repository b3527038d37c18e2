"""Check a conversation against every enabled compliance profile; violations raise alerts for supervisors."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from cx_alerts.alerts.models import Alert
from cx_alerts.compliance.models import ComplianceProfile, ComplianceResult
from cx_alerts.compliance.schemas import ComplianceDefinition, Scorecard
from cx_alerts.context import Ctx
from cx_alerts.notifications import service as notifications
from cx_alerts.org import service as org
from cx_alerts.signals.service import Signal


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
                    id=uuid.uuid4(),
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


async def scorecards(
    session: AsyncSession, tenant_id: uuid.UUID, *, since: dt.datetime, until: dt.datetime, agent_id: str | None
) -> list[Scorecard]:
    query = select(ComplianceResult).where(
        ComplianceResult.tenant_id == tenant_id,
        ComplianceResult.occurred_at >= since,
        ComplianceResult.occurred_at < until,
    )
    if agent_id:
        query = query.where(ComplianceResult.agent_id == agent_id)
    cards: dict[str, dict[str, Any]] = {}
    for row in (await session.execute(query)).scalars():
        card = cards.setdefault(row.agent_id, {"n": 0, "score": 0.0, "passed": 0, "violations": {}})
        card["n"] += 1
        card["score"] += row.score
        card["passed"] += int(row.passed)
        for v in row.violations:
            key = f"{v['kind']}:{v['item']}"
            card["violations"][key] = card["violations"].get(key, 0) + 1
    return [
        Scorecard(
            agent_id=agent,
            conversations=c["n"],
            average_score=round(c["score"] / c["n"], 4),
            pass_rate=round(c["passed"] / c["n"], 4),
            violations=c["violations"],
        )
        for agent, c in sorted(cards.items())
    ]
