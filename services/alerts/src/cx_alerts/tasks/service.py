"""Improvement task workflow with role checks on every transition and the before/after metric of its aspect.

draft ──submit──▶ submitted ──approve──▶ approved ──start──▶ in_progress ──complete──▶ completed ──accept──▶ accepted
  ▲                   │                                          ▲                        │
  └──────reject───────┘ (rejected: edit the plan, submit again)  └─────────return─────────┘
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cx.events.v1 import events_pb2
from cx_alerts.audit import service as audit
from cx_alerts.context import Ctx
from cx_alerts.notifications import service as notifications
from cx_alerts.org import service as org
from cx_alerts.signals import service as signals
from cx_alerts.tasks.models import ImprovementTask, TaskUpdate
from cx_alerts.tasks.schemas import TaskCreate
from cx_common.auth import Principal
from cx_common.db import new_id
from cx_common.errors import Problem
from cx_common.pagination import cursor_uuid, encode_cursor

# action -> (from statuses, to status, event type)
ACTIONS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "submit": (("draft", "rejected"), "submitted", "task.submitted"),
    "approve": (("submitted",), "approved", "task.approved"),
    "reject": (("submitted",), "rejected", "task.rejected"),
    "start": (("approved", "returned"), "in_progress", "task.started"),
    "complete": (("in_progress",), "completed", "task.completed"),
    "accept": (("completed",), "accepted", "task.accepted"),
    "return": (("completed",), "returned", "task.returned"),
}
APPROVER_ROLES = frozenset({"admin", "manager"})
VERIFIER_ROLES = frozenset({"admin", "manager", "verifier", "qa"})


def allowed_actions(task: ImprovementTask) -> list[str]:
    return [a for a, (sources, _, _) in ACTIONS.items() if task.status in sources]


def snapshot(t: ImprovementTask) -> dict[str, Any]:
    return {
        "status": t.status,
        "plan": t.plan,
        "due_date": t.due_date,
        "assignee_user_id": t.assignee_user_id,
        "approver_id": t.approver_id,
        "approval_comment": t.approval_comment,
        "verifier_id": t.verifier_id,
        "acceptance_comment": t.acceptance_comment,
        "metric_before": t.metric_before,
        "metric_after": t.metric_after,
        "version": t.version,
    }


def to_event(t: ImprovementTask, actor: str) -> events_pb2.TaskChanged:
    event = events_pb2.TaskChanged(
        task_id=str(t.id),
        status=t.status,
        org_unit_id=t.org_unit_id,
        department_id=t.department_id,
        aspect_path=t.aspect_path,
        metric=t.metric,
        actor_user_id=actor,
    )
    if t.metric_before is not None:
        event.metric_before = t.metric_before
    if t.metric_after is not None:
        event.metric_after = t.metric_after
    return event


async def negative_share(
    session: AsyncSession, task: ImprovementTask, since: dt.datetime, until: dt.datetime
) -> float | None:
    """Share of the aspect's mentions (within the task's org unit) in [since, until] that were negative; None
    without mentions."""
    until = until + dt.timedelta(microseconds=1)
    if not task.aspect_path:
        return None
    key = "/".join(task.aspect_path)
    scope = task.org_unit_id or task.department_id
    total = await signals.count_aspect(session, task.tenant_id, key, since=since, until=until, org_unit_id=scope)
    if total == 0:
        return None
    negative = await signals.count_aspect(
        session, task.tenant_id, key, since=since, until=until, org_unit_id=scope, negative_only=True
    )
    return round(negative / total, 4)


def _forbidden(detail: str) -> Problem:
    return Problem(403, detail)


def _in_scope(principal: Principal, department_path: list[str]) -> bool:
    return principal.org_unit_id is None or principal.org_unit_id in department_path


async def get(
    session: AsyncSession, tenant_id: uuid.UUID, task_id: uuid.UUID, *, lock: bool = False
) -> ImprovementTask | None:
    query = select(ImprovementTask).where(ImprovementTask.tenant_id == tenant_id, ImprovementTask.id == task_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def create(session: AsyncSession, ctx: Ctx, principal: Principal, data: TaskCreate) -> ImprovementTask:
    tenant = principal.tenant_id
    department = await org.get_unit(session, tenant, data.department_id)
    if department is None:
        raise Problem(
            422,
            f"department_id: unknown org unit {data.department_id}",
            title="Validation failed",
            errors=[{"field": "department_id", "message": "unknown org unit", "type": "unknown"}],
        )
    if data.org_unit_id and await org.get_unit(session, tenant, data.org_unit_id) is None:
        raise Problem(
            422,
            f"org_unit_id: unknown org unit {data.org_unit_id}",
            title="Validation failed",
            errors=[{"field": "org_unit_id", "message": "unknown org unit", "type": "unknown"}],
        )
    if data.assignee_user_id and await org.get_user(session, tenant, data.assignee_user_id) is None:
        raise Problem(
            422,
            f"assignee_user_id: unknown user {data.assignee_user_id}",
            title="Validation failed",
            errors=[{"field": "assignee_user_id", "message": "unknown or inactive user", "type": "unknown"}],
        )
    assignee = data.assignee_user_id or (await org.manager_for(session, tenant, data.department_id))[0]
    task = ImprovementTask(
        id=new_id(),
        tenant_id=tenant,
        title=data.title,
        description=data.description,
        status="draft",
        source_kind=data.source_kind,
        aspect_path=data.aspect_path,
        cluster_id=data.cluster_id,
        ticket_ids=[str(t) for t in data.ticket_ids],
        org_unit_id=data.org_unit_id or data.department_id,
        department_id=data.department_id,
        department_path=org.path_of(department, data.department_id),
        assignee_user_id=assignee,
        created_by=principal.user_id,
        metric_window_days=data.metric_window_days,
        opened_at=ctx.now(),
        version=1,
    )
    now = ctx.now()
    task.metric_before = await negative_share(session, task, now - dt.timedelta(days=data.metric_window_days), now)
    session.add(task)
    await session.flush()
    await audit.record(
        session,
        tenant,
        audit.Actor.of(principal),
        entity_type="task",
        entity_id=task.id,
        action="created",
        after=snapshot(task),
    )
    await ctx.emit(session, tenant, "task.created", to_event(task, principal.user_id))
    await notifications.notify(
        session,
        tenant,
        [assignee],
        kind="task_assigned",
        title=f"improvement task: {task.title}",
        task_id=task.id,
        template="task_assigned",
        params={"title": task.title},
    )
    return task


async def act(
    session: AsyncSession,
    ctx: Ctx,
    task: ImprovementTask,
    principal: Principal,
    action: str,
    *,
    comment: str = "",
    plan: str | None = None,
    due_date: dt.date | None = None,
) -> ImprovementTask:
    sources, target, event_type = ACTIONS[action]
    if task.status not in sources:
        allowed = allowed_actions(task)
        raise Problem(
            409,
            f"cannot {action} a task that is {task.status}; allowed: {', '.join(allowed) or 'none'}",
            current_status=task.status,
            allowed=allowed,
        )
    user = principal.user_id
    department = await org.get_unit(session, task.tenant_id, task.department_id)
    department_path = org.path_of(department, task.department_id)
    is_admin = principal.role == "admin"
    if action in ("submit", "start", "complete") and not (is_admin or user in (task.assignee_user_id, task.created_by)):
        raise _forbidden(f"only the assignee or the creator may {action} this task")
    if action in ("approve", "reject"):
        if principal.role not in APPROVER_ROLES or not _in_scope(principal, department_path):
            raise _forbidden("approval needs a manager of the owner department (or above)")
        if user == task.created_by or user == task.assignee_user_id:
            raise _forbidden("the creator or assignee cannot approve their own plan")
    if action in ("accept", "return"):
        if principal.role not in VERIFIER_ROLES or not _in_scope(principal, department_path):
            raise _forbidden("acceptance needs a verifier of the owner department (or above)")
        if user == task.assignee_user_id:
            raise _forbidden("the assignee cannot accept their own work")
    if action in ("reject", "return") and not comment:
        raise Problem(
            422,
            "comment: required when rejecting or returning",
            title="Validation failed",
            errors=[{"field": "comment", "message": "required", "type": "missing"}],
        )
    before = snapshot(task)
    now = ctx.now()
    recipients: list[str | None] = []
    if action == "submit":
        task.plan = plan or task.plan
        task.due_date = due_date or task.due_date
        task.submitted_at = now
        approver, _ = await org.manager_for(session, task.tenant_id, department.parent_id if department else None)
        recipients = [approver or (department.manager_user_id if department else None)]
    elif action in ("approve", "reject"):
        task.approver_id = user
        task.approval_comment = comment
        task.approved_at = now if action == "approve" else None
        recipients = [task.assignee_user_id, task.created_by]
    elif action == "start":
        task.started_at = task.started_at or now
    elif action == "complete":
        task.completed_at = now
        task.metric_after = await negative_share(session, task, task.started_at or task.opened_at, now)
        recipients = [task.created_by]
    elif action in ("accept", "return"):
        task.verifier_id = user
        task.acceptance_comment = comment
        task.accepted_at = now if action == "accept" else None
        recipients = [task.assignee_user_id, task.created_by]
    task.status = target
    task.version += 1
    if comment or action in ("approve", "reject", "accept", "return"):
        session.add(
            TaskUpdate(
                id=new_id(), tenant_id=task.tenant_id, task_id=task.id, author_id=user, kind=action, note=comment
            )
        )
    await session.flush()
    await audit.record(
        session,
        task.tenant_id,
        audit.Actor.of(principal),
        entity_type="task",
        entity_id=task.id,
        action=action,
        before=before,
        after=snapshot(task),
    )
    await ctx.emit(session, task.tenant_id, event_type, to_event(task, user))
    await notifications.notify(
        session,
        task.tenant_id,
        [r for r in recipients if r != user],
        kind=f"task_{target}",
        title=f"{task.title}: {target}",
        template="task_status",
        params={"title": task.title, "status": target},
        body=comment,
        task_id=task.id,
    )
    return task


async def add_progress(
    session: AsyncSession, task: ImprovementTask, principal: Principal, note: str, percent: int | None
) -> TaskUpdate:
    if task.status != "in_progress":
        raise Problem(409, f"progress can be reported only while in_progress (task is {task.status})", allowed=[])
    if principal.role != "admin" and principal.user_id not in (task.assignee_user_id, task.created_by):
        raise _forbidden("only the assignee or the creator may report progress")
    update = TaskUpdate(
        id=new_id(),
        tenant_id=task.tenant_id,
        task_id=task.id,
        author_id=principal.user_id,
        kind="progress",
        note=note,
        progress_percent=percent,
    )
    session.add(update)
    await session.flush()
    await audit.record(
        session,
        task.tenant_id,
        audit.Actor.of(principal),
        entity_type="task",
        entity_id=task.id,
        action="progress",
        after={"note": note, "progress_percent": percent},
    )
    return update


async def updates(session: AsyncSession, task_id: uuid.UUID) -> list[TaskUpdate]:
    rows = await session.execute(
        select(TaskUpdate).where(TaskUpdate.task_id == task_id).order_by(TaskUpdate.created_at, TaskUpdate.id)
    )
    return list(rows.scalars())


async def list_page(
    session: AsyncSession, principal: Principal, *, limit: int, cursor: str | None, status: str | None
) -> tuple[list[ImprovementTask], str | None]:
    query = select(ImprovementTask).where(ImprovementTask.tenant_id == principal.tenant_id)
    if principal.org_unit_id is not None:
        query = query.where(ImprovementTask.department_path.contains([principal.org_unit_id]))
    if status:
        query = query.where(ImprovementTask.status == status)
    if (after := cursor_uuid(cursor)) is not None:
        query = query.where(ImprovementTask.id < after)
    rows = list((await session.execute(query.order_by(ImprovementTask.id.desc()).limit(limit + 1))).scalars())
    next_cursor = encode_cursor({"id": str(rows[limit - 1].id)}) if len(rows) > limit else None
    return rows[:limit], next_cursor
