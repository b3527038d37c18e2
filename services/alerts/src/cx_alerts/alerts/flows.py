"""Signal → rules → alert (+ ticket, + notifications), inside the consumer's transaction."""

from __future__ import annotations

import datetime as dt
import uuid

from pydantic import ValidationError
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from cx.events.v1 import events_pb2
from cx_alerts.alerts.models import Alert
from cx_alerts.audit import service as audit
from cx_alerts.context import Ctx
from cx_alerts.notifications import service as notifications
from cx_alerts.org import service as org
from cx_alerts.rules import service as rules
from cx_alerts.rules.models import AlertRule
from cx_alerts.rules.schemas import RuleDefinition
from cx_alerts.signals import service as signals
from cx_alerts.signals.service import Signal
from cx_alerts.tickets import service as tickets
from cx_alerts.tickets.models import Ticket
from cx_common.db import new_id
from cx_common.logging import get_logger

log = get_logger(__name__)


def alert_event(alert: Alert) -> events_pb2.AlertRaised:
    return events_pb2.AlertRaised(
        alert_id=str(alert.id),
        rule_id=str(alert.rule_id) if alert.rule_id else "",
        rule_version=alert.rule_version,
        severity=alert.severity,
        source_event_id=str(alert.source_event_id),
        source_type=alert.source_type,
        feedback_id=alert.feedback_id,
        response_id=alert.response_id,
        org_unit_id=alert.org_unit_id,
        customer_key=alert.customer_key,
        reason=alert.reason,
    )


def new_alert(
    ctx: Ctx,
    signal: Signal,
    org_path: list[str],
    *,
    severity: str,
    reason: str,
    kind: str = "rule",
    rule: AlertRule | None = None,
) -> Alert:
    return Alert(
        id=new_id(),
        tenant_id=signal.tenant_id,
        rule_id=rule.id if rule else None,
        rule_version=rule.version if rule else 0,
        kind=kind,
        severity=severity,
        status="open",
        source_event_id=signal.event_id,
        source_type=signal.event_type,
        response_id=signal.response_id,
        feedback_id=signal.feedback_id,
        org_unit_id=signal.org_unit_id,
        org_path=org_path,
        customer_key=signal.customer_key,
        reason=reason,
        raised_at=ctx.now(),
    )


async def raise_alert(
    session: AsyncSession,
    ctx: Ctx,
    signal: Signal,
    org_path: list[str],
    *,
    severity: str,
    reason: str,
    kind: str = "rule",
    rule: AlertRule | None = None,
) -> Alert:
    alert = new_alert(ctx, signal, org_path, severity=severity, reason=reason, kind=kind, rule=rule)
    await ctx.emit(session, signal.tenant_id, "alert.raised", alert_event(alert))
    session.add(alert)
    return alert


def _title(rule: AlertRule, signal: Signal, reasons: list[str]) -> str:
    who = f" · {signal.customer_key}" if signal.customer_key else ""
    return f"{rule.name}: {'; '.join(reasons) or 'matched'}{who}"[:300]


async def apply_rule(
    session: AsyncSession,
    ctx: Ctx,
    rule: AlertRule,
    definition: RuleDefinition,
    signal: Signal,
    org_path: list[str],
    reasons: list[str],
) -> Alert:
    actor = audit.Actor("rule", str(rule.id))
    actions = definition.actions
    # The alert row is added last, with its ticket: one INSERT, no UPDATE (its event and audit entry need no row).
    alert = new_alert(ctx, signal, org_path, severity=actions.severity, reason="; ".join(reasons), rule=rule)
    await ctx.emit(session, signal.tenant_id, "alert.raised", alert_event(alert))
    await audit.record(
        session,
        signal.tenant_id,
        actor,
        entity_type="alert",
        entity_id=alert.id,
        action="raised",
        after={"rule_version": rule.version, "reason": alert.reason, "source_event_id": str(signal.event_id)},
    )
    ticket: Ticket | None = None
    if actions.open_ticket is not None:
        priority = actions.open_ticket.priority
        if signal.customer_key and definition.grouping_window_minutes > 0:
            # one customer's burst → one ticket: serialise per customer, then look for a recent open ticket
            await session.execute(
                text("SELECT pg_advisory_xact_lock(hashtext('group:' || :tenant || ':' || :customer))"),
                {"tenant": str(signal.tenant_id), "customer": signal.customer_key},
            )
            since = ctx.now() - dt.timedelta(minutes=definition.grouping_window_minutes)
            ticket = await tickets.open_for_customer(session, signal.tenant_id, signal.customer_key, since)
            if ticket is not None:
                await tickets.attach_alert(
                    session, ctx, ticket, actor, alert_id=alert.id, reason=alert.reason, priority=priority
                )
        if ticket is None:
            ticket = await tickets.open_ticket(
                session,
                ctx,
                signal.tenant_id,
                actor,
                title=_title(rule, signal, reasons),
                priority=priority,
                org_unit_id=signal.org_unit_id,
                customer_key=signal.customer_key,
                touchpoint_id=signal.touchpoint_id,
                channel=signal.channel,
                rule_id=rule.id,
                alert_id=alert.id,
                source_event_id=signal.event_id,
                source_type=signal.event_type,
                response_id=signal.response_id,
                feedback_id=signal.feedback_id,
                payload=signal.payload,
            )
        alert.ticket_id = ticket.id
    session.add(alert)
    if actions.notify is not None:
        recipients = list(actions.notify.user_ids)
        if actions.notify.notify_owner:
            owner, _ = await org.manager_for(session, signal.tenant_id, signal.org_unit_id)
            recipients.append(owner or "")
        await notifications.notify(
            session,
            signal.tenant_id,
            recipients,
            kind="alert",
            title=f"[{actions.severity}] {rule.name}",
            template="alert",
            params={"severity": actions.severity, "rule": rule.name},
            body=alert.reason,
            alert_id=alert.id,
            ticket_id=ticket.id if ticket else None,
        )
    return alert


async def process_signal(session: AsyncSession, ctx: Ctx, envelope: events_pb2.Envelope) -> list[Alert]:
    signal = signals.from_envelope(envelope)
    unit = await org.get_unit(session, signal.tenant_id, signal.org_unit_id)
    org_path = org.path_of(unit, signal.org_unit_id)
    await signals.remember(session, signal, org_path)  # first, so volume counts include this signal
    if signal.event_type == signals.FEEDBACK and signal.response_id:
        await tickets.attach_analysis(session, signal.tenant_id, signal.response_id, signal.payload)
    if envelope.HasField("survey_response_submitted"):  # a follow-up survey's answer closes its ticket's loop
        await tickets.link_follow_up(session, signal.tenant_id, envelope.survey_response_submitted)
    raised: list[Alert] = []
    for rule in await rules.enabled_rules(session, signal.tenant_id, signal.event_type):
        try:
            definition = rules.parsed(rule)
        except ValidationError as exc:  # stored under an older schema: skip it rather than block the stream
            log.error("rule_definition_invalid", rule_id=str(rule.id), error=str(exc))
            continue
        matched, reasons = await rules.match(session, definition, signal, org_path)
        if not matched:
            continue
        if any(r.startswith("volume spike") for r in reasons) and await rules.spike_reported(
            session, rule, definition, signal, ctx.now()
        ):
            continue
        raised.append(await apply_rule(session, ctx, rule, definition, signal, org_path, reasons))
    if signal.event_type == signals.FEEDBACK and signal.turns:
        from cx_alerts.compliance import service as compliance

        raised.extend(await compliance.check_conversation(session, ctx, signal, org_path))
    return raised


async def list_alerts(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    org_unit_id: str | None,
    *,
    limit: int,
    after: uuid.UUID | None,
    rule_id: uuid.UUID | None = None,
    ticket_id: uuid.UUID | None = None,
) -> list[Alert]:
    query = select(Alert).where(Alert.tenant_id == tenant_id)
    if org_unit_id is not None:
        query = query.where(Alert.org_path.contains([org_unit_id]))
    if rule_id:
        query = query.where(Alert.rule_id == rule_id)
    if ticket_id:
        query = query.where(Alert.ticket_id == ticket_id)
    if after is not None:
        query = query.where(Alert.id < after)
    return list((await session.execute(query.order_by(Alert.id.desc()).limit(limit + 1))).scalars())
