import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Response, status

from cx_alerts.concurrency import check_version, expected_version, set_etag
from cx_alerts.context import CtxDep
from cx_alerts.tasks import service
from cx_alerts.tasks.models import ImprovementTask
from cx_alerts.tasks.schemas import Decision, PlanSubmit, Progress, TaskCreate, TaskRead, TaskUpdateRead
from cx_common.app import SessionDep
from cx_common.auth import Principal, require_scopes
from cx_common.errors import not_found
from cx_common.pagination import Page, clamp_limit

router = APIRouter(prefix="/v1/tasks", tags=["improvement tasks"])

Reader = Annotated[Principal, Depends(require_scopes("tasks:read"))]
Writer = Annotated[Principal, Depends(require_scopes("tasks:write"))]
IfMatch = Annotated[str | None, Header(description='ETag of the version you read, e.g. "3"')]


def _read(task: ImprovementTask) -> TaskRead:
    out = TaskRead.model_validate(task)
    out.allowed_actions = service.allowed_actions(task)
    return out


async def _load(session: SessionDep, principal: Principal, task_id: uuid.UUID, lock: bool = False) -> ImprovementTask:
    task = await service.get(session, principal.tenant_id, task_id, lock=lock)
    if task is None or (principal.org_unit_id is not None and principal.org_unit_id not in task.department_path):
        raise not_found("task", task_id)
    return task


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TaskRead, summary="Create an improvement task")
async def create_task(
    body: TaskCreate, session: SessionDep, principal: Writer, ctx: CtxDep, response: Response
) -> TaskRead:
    task = await service.create(session, ctx, principal, body)
    await session.commit()
    set_etag(response, task.version)
    return _read(task)


@router.get("", response_model=Page[TaskRead], summary="List tasks (newest first)")
async def list_tasks(
    session: SessionDep,
    principal: Reader,
    status_: Annotated[str | None, Query(alias="status")] = None,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
    cursor: str | None = None,
) -> Page[TaskRead]:
    rows, next_cursor = await service.list_page(
        session, principal, limit=clamp_limit(limit), cursor=cursor, status=status_
    )
    return Page[TaskRead](items=[_read(r) for r in rows], next_cursor=next_cursor)


@router.get("/{task_id}", response_model=TaskRead, summary="Get a task")
async def get_task(task_id: uuid.UUID, session: SessionDep, principal: Reader, response: Response) -> TaskRead:
    task = await _load(session, principal, task_id)
    set_etag(response, task.version)
    return _read(task)


@router.get("/{task_id}/updates", response_model=list[TaskUpdateRead], summary="Decisions and progress notes")
async def task_updates(task_id: uuid.UUID, session: SessionDep, principal: Reader) -> list[TaskUpdateRead]:
    await _load(session, principal, task_id)
    return [TaskUpdateRead.model_validate(u) for u in await service.updates(session, task_id)]


@router.post("/{task_id}/submit", response_model=TaskRead, summary="Submit the plan and due date for approval")
async def submit(
    task_id: uuid.UUID, body: PlanSubmit, session: SessionDep, principal: Writer, ctx: CtxDep, if_match: IfMatch = None
) -> TaskRead:
    task = await _load(session, principal, task_id, lock=True)
    check_version(task.version, expected_version(if_match, body.version), "task")
    await service.act(session, ctx, task, principal, "submit", plan=body.plan, due_date=body.due_date)
    await session.commit()
    return _read(task)


async def _decide(
    action: str,
    task_id: uuid.UUID,
    body: Decision,
    session: SessionDep,
    principal: Principal,
    ctx: CtxDep,
    if_match: str | None,
) -> TaskRead:
    task = await _load(session, principal, task_id, lock=True)
    check_version(task.version, expected_version(if_match, body.version), "task")
    await service.act(session, ctx, task, principal, action, comment=body.comment)
    await session.commit()
    return _read(task)


@router.post("/{task_id}/approve", response_model=TaskRead, summary="Manager approves the plan")
async def approve(
    task_id: uuid.UUID, body: Decision, session: SessionDep, principal: Writer, ctx: CtxDep, if_match: IfMatch = None
) -> TaskRead:
    return await _decide("approve", task_id, body, session, principal, ctx, if_match)


@router.post("/{task_id}/reject", response_model=TaskRead, summary="Manager rejects the plan (comment required)")
async def reject(
    task_id: uuid.UUID, body: Decision, session: SessionDep, principal: Writer, ctx: CtxDep, if_match: IfMatch = None
) -> TaskRead:
    return await _decide("reject", task_id, body, session, principal, ctx, if_match)


@router.post("/{task_id}/start", response_model=TaskRead, summary="Start (or resume) execution")
async def start(
    task_id: uuid.UUID, body: Decision, session: SessionDep, principal: Writer, ctx: CtxDep, if_match: IfMatch = None
) -> TaskRead:
    return await _decide("start", task_id, body, session, principal, ctx, if_match)


@router.post(
    "/{task_id}/progress",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskUpdateRead,
    summary="Report execution progress",
)
async def progress(task_id: uuid.UUID, body: Progress, session: SessionDep, principal: Writer) -> TaskUpdateRead:
    task = await _load(session, principal, task_id, lock=True)
    update = await service.add_progress(session, task, principal, body.note, body.progress_percent)
    await session.commit()
    await session.refresh(update)
    return TaskUpdateRead.model_validate(update)


@router.post("/{task_id}/complete", response_model=TaskRead, summary="Execution done: submit for acceptance")
async def complete(
    task_id: uuid.UUID, body: Decision, session: SessionDep, principal: Writer, ctx: CtxDep, if_match: IfMatch = None
) -> TaskRead:
    return await _decide("complete", task_id, body, session, principal, ctx, if_match)


@router.post("/{task_id}/accept", response_model=TaskRead, summary="Verifier accepts (sees before/after metric)")
async def accept(
    task_id: uuid.UUID, body: Decision, session: SessionDep, principal: Writer, ctx: CtxDep, if_match: IfMatch = None
) -> TaskRead:
    return await _decide("accept", task_id, body, session, principal, ctx, if_match)


@router.post("/{task_id}/return", response_model=TaskRead, summary="Verifier returns it for more work")
async def return_task(
    task_id: uuid.UUID, body: Decision, session: SessionDep, principal: Writer, ctx: CtxDep, if_match: IfMatch = None
) -> TaskRead:
    return await _decide("return", task_id, body, session, principal, ctx, if_match)
