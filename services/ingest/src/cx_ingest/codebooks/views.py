import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, status
from sqlalchemy import select

from cx_common.app import Runtime, RuntimeDep, SessionDep
from cx_common.auth import Principal, require_scopes
from cx_common.errors import Problem, conflict, not_found
from cx_ingest.codebooks import recode, service
from cx_ingest.codebooks.models import Codebook, RecodeJob
from cx_ingest.codebooks.schemas import (
    CodebookCreate,
    CodebookRead,
    DraftIn,
    HistoryRead,
    NodeIn,
    NodePatch,
    PublishIn,
    RecodeJobRead,
    TemplateRead,
    VersionRead,
)
from cx_ingest.codebooks.service import StateConflictError, TreeError
from cx_ingest.codebooks.templates import TEMPLATES, template_nodes

router = APIRouter(prefix="/v1/codebooks", tags=["codebooks"])

Reader = Annotated[Principal, Depends(require_scopes("codebooks:read"))]
Writer = Annotated[Principal, Depends(require_scopes("codebooks:write"))]


def tree_problem(exc: TreeError) -> Problem:
    return Problem(422, str(exc), errors=[{"field": exc.field, "message": str(exc)}])


async def _read(session: SessionDep, cb: Codebook) -> CodebookRead:
    await session.refresh(cb)  # server-side updated_at
    return CodebookRead.model_validate(cb)


async def _codebook(
    session: SessionDep, principal: Principal, codebook_id: uuid.UUID, *, lock: bool = False
) -> Codebook:
    """With `lock`, the codebook row stays locked until the request commits (every read-modify-write: concurrent
    edits of one codebook apply one after another instead of overwriting each other)."""
    cb = await service.get(session, principal.tenant_id, codebook_id, for_update=lock)
    if cb is None:
        raise not_found("codebook", codebook_id)
    return cb


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CodebookRead)
async def create_codebook(body: CodebookCreate, session: SessionDep, principal: Writer) -> CodebookRead:
    try:
        cb = await service.create(session, principal.tenant_id, body, principal.user_id)
    except TreeError as exc:
        raise tree_problem(exc) from exc
    except StateConflictError as exc:
        raise conflict(
            f"active: {exc}", reason="not_published", errors=[{"field": "active", "message": str(exc)}]
        ) from exc
    await session.commit()
    return await _read(session, cb)


@router.get("/templates", response_model=list[TemplateRead])
async def list_templates(principal: Reader) -> list[TemplateRead]:
    """Industry starter codebooks (retail, e-commerce, food delivery, automotive, banking)."""
    out = []
    for key, (zh, en, _) in TEMPLATES.items():
        nodes = service.build_tree([NodeIn.model_validate(n) for n in template_nodes(key)], "zh-Hans")
        out.append(TemplateRead(id=key, names={"zh-Hans": zh, "en": en}, nodes=nodes))
    return out


@router.get("", response_model=list[CodebookRead])
async def list_codebooks(session: SessionDep, principal: Reader) -> list[CodebookRead]:
    return [CodebookRead.model_validate(cb) for cb in await service.list_all(session, principal.tenant_id)]


@router.get("/{codebook_id}", response_model=CodebookRead)
async def get_codebook(codebook_id: uuid.UUID, session: SessionDep, principal: Reader) -> CodebookRead:
    return CodebookRead.model_validate(await _codebook(session, principal, codebook_id))


@router.put("/{codebook_id}/draft", response_model=CodebookRead)
async def replace_draft(codebook_id: uuid.UUID, body: DraftIn, session: SessionDep, principal: Writer) -> CodebookRead:
    """Replace the draft tree (validated: unique ids, known parents, at most 3 levels, primary-language names)."""
    cb = await _codebook(session, principal, codebook_id, lock=True)
    try:
        await service.replace_draft(session, cb, body.nodes, principal.user_id)
    except TreeError as exc:
        raise tree_problem(exc) from exc
    await session.commit()
    return await _read(session, cb)


@router.post("/{codebook_id}/nodes", status_code=status.HTTP_201_CREATED, response_model=CodebookRead)
async def add_node(codebook_id: uuid.UUID, body: NodeIn, session: SessionDep, principal: Writer) -> CodebookRead:
    cb = await _codebook(session, principal, codebook_id, lock=True)
    try:
        await service.add_node(session, cb, body, principal.user_id)
    except TreeError as exc:
        raise tree_problem(exc) from exc
    await session.commit()
    return await _read(session, cb)


@router.patch("/{codebook_id}/nodes/{node_id}", response_model=CodebookRead)
async def patch_node(
    codebook_id: uuid.UUID, node_id: str, body: NodePatch, session: SessionDep, principal: Writer
) -> CodebookRead:
    cb = await _codebook(session, principal, codebook_id, lock=True)
    try:
        await service.patch_node(session, cb, node_id, body, principal.user_id)
    except KeyError as exc:
        raise not_found("node", node_id) from exc
    except TreeError as exc:
        raise tree_problem(exc) from exc
    await session.commit()
    return await _read(session, cb)


@router.delete("/{codebook_id}/nodes/{node_id}", response_model=CodebookRead)
async def delete_node(codebook_id: uuid.UUID, node_id: str, session: SessionDep, principal: Writer) -> CodebookRead:
    """Delete a draft node and everything under it."""
    cb = await _codebook(session, principal, codebook_id, lock=True)
    try:
        await service.delete_node(session, cb, node_id, principal.user_id)
    except KeyError as exc:
        raise not_found("node", node_id) from exc
    await session.commit()
    return await _read(session, cb)


def _spawn_recode(runtime: Runtime, job: RecodeJob | None) -> None:
    if job is not None and runtime.sessions is not None:
        runtime.spawn(recode.run_job(runtime.sessions, job.id), f"recode-{job.id}")


@router.post("/{codebook_id}/versions", status_code=status.HTTP_201_CREATED, response_model=VersionRead)
async def publish(
    codebook_id: uuid.UUID, body: PublishIn, session: SessionDep, runtime: RuntimeDep, principal: Writer
) -> VersionRead:
    """Publish the draft as the next immutable version; new feedback is coded against it. For the active codebook
    this starts a re-coding backfill of items coded against older versions (progress under `/recodes`)."""
    await service.lock_tenant(session, principal.tenant_id)  # whether it is active is read under the tenant lock
    cb = await _codebook(session, principal, codebook_id, lock=True)
    if not cb.draft_nodes:
        raise Problem(422, "nodes: cannot publish an empty codebook", errors=[{"field": "nodes"}])
    version = await service.publish(session, cb, body.note, principal.user_id)
    job = await recode.start_job(session, cb.tenant_id, cb.id, version.version) if cb.active else None
    await session.commit()
    _spawn_recode(runtime, job)
    return VersionRead.model_validate(version)


@router.get("/{codebook_id}/recodes", response_model=list[RecodeJobRead])
async def list_recodes(codebook_id: uuid.UUID, session: SessionDep, principal: Reader) -> list[RecodeJobRead]:
    """Re-coding backfills of this codebook, newest first, with progress."""
    cb = await _codebook(session, principal, codebook_id)
    query = (
        select(RecodeJob)
        .where(RecodeJob.tenant_id == cb.tenant_id, RecodeJob.codebook_id == cb.id)
        .order_by(RecodeJob.id.desc())
    )
    out = []
    for job in (await session.execute(query)).scalars():
        read = RecodeJobRead.model_validate(job)
        read.recoded = await recode.recoded_count(session, job)
        out.append(read)
    return out


@router.get("/{codebook_id}/versions", response_model=list[VersionRead])
async def list_versions(codebook_id: uuid.UUID, session: SessionDep, principal: Reader) -> list[VersionRead]:
    cb = await _codebook(session, principal, codebook_id)
    return [VersionRead.model_validate(v) for v in await service.versions(session, cb)]


@router.post("/{codebook_id}:activate", response_model=CodebookRead)
async def activate(codebook_id: uuid.UUID, session: SessionDep, runtime: RuntimeDep, principal: Writer) -> CodebookRead:
    """Make this the tenant's active codebook (the analysis worker codes against its latest version); starts a
    re-coding backfill when it has a published version. A codebook without a published version cannot replace an
    active codebook that has one (409: publish a version first). Concurrent activations of a tenant apply one after
    another (tenant advisory lock): the last one wins."""
    await service.lock_tenant(session, principal.tenant_id)
    cb = await _codebook(session, principal, codebook_id, lock=True)
    try:
        await service.activate(session, cb, principal.user_id)
    except StateConflictError as exc:
        raise conflict(str(exc), reason="not_published") from exc
    job = await recode.start_job(session, cb.tenant_id, cb.id, cb.latest_version) if cb.latest_version else None
    await session.commit()
    _spawn_recode(runtime, job)
    return await _read(session, cb)


@router.get("/{codebook_id}/history", response_model=list[HistoryRead])
async def get_history(codebook_id: uuid.UUID, session: SessionDep, principal: Reader) -> list[HistoryRead]:
    cb = await _codebook(session, principal, codebook_id)
    return [HistoryRead.model_validate(h) for h in await service.history(session, cb)]
