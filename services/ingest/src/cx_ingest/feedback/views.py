import asyncio
import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import StreamingResponse

from cx_common.app import RuntimeDep, SessionDep
from cx_common.auth import Principal, require_scopes
from cx_common.errors import Problem, not_found
from cx_common.pagination import Page, clamp_limit
from cx_ingest.feedback import files, service
from cx_ingest.feedback.models import ImportBatch
from cx_ingest.feedback.schemas import BatchCounts, BatchResult, Channel, FeedbackRead, RecordResult
from cx_ingest.orgs.service import visible_units
from cx_ingest.partners.auth import PartnerDep
from cx_ingest.settings import Settings

partner_router = APIRouter(prefix="/v1", tags=["partner API"])
router = APIRouter(prefix="/v1/feedback", tags=["feedback"])

Reader = Annotated[Principal, Depends(require_scopes("feedback:read"))]


def batch_result(batch: ImportBatch) -> BatchResult:
    return BatchResult(
        import_id=batch.id,
        kind=batch.kind,
        status=batch.status,
        counts=BatchCounts(
            total=batch.total, accepted=batch.accepted, duplicate=batch.duplicate, rejected=batch.rejected
        ),
        results=[RecordResult.model_validate(r) for r in batch.results],
        filename=batch.filename,
        total_rows=batch.total_rows,
        processed_rows=batch.processed_rows if batch.kind == "file" else None,
        error=batch.error,
    )


@partner_router.get(
    "/imports/{import_id}",
    response_model=BatchResult,
    response_model_exclude_none=True,
    summary="Status and per-record results",
)
async def get_import(import_id: uuid.UUID, caller: PartnerDep, session: SessionDep) -> BatchResult:
    batch = await service.get_import(session, caller.tenant_id, import_id)
    if batch is None or batch.partner_id != caller.partner_id:
        raise not_found("import", import_id)
    await session.commit()
    return batch_result(batch)


@router.get("", response_model=Page[FeedbackRead])
async def list_feedback(
    session: SessionDep,
    principal: Reader,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
    cursor: str | None = None,
    channel: Channel | None = None,
    analysis_state: Annotated[str | None, Query(pattern="^(pending|processing|done|failed)$")] = None,
    partner_id: uuid.UUID | None = None,
) -> Page[FeedbackRead]:
    rows, next_cursor = await service.list_feedback(
        session,
        principal.tenant_id,
        limit=clamp_limit(limit),
        cursor=cursor,
        channel=channel,
        analysis_state=analysis_state,
        partner_id=partner_id,
        units=visible_units(principal),
    )
    return Page[FeedbackRead](items=[FeedbackRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/{feedback_id}", response_model=FeedbackRead)
async def get_feedback(feedback_id: uuid.UUID, session: SessionDep, principal: Reader) -> FeedbackRead:
    row = await service.get_feedback(session, principal.tenant_id, feedback_id, units=visible_units(principal))
    if row is None:
        raise not_found("feedback item", feedback_id)
    return FeedbackRead.model_validate(row)


@partner_router.post(
    "/feedback:import",
    status_code=202,
    response_model=BatchResult,
    response_model_exclude_none=True,
    summary="Upload a CSV or XLSX file of feedback",
)
async def import_file(
    caller: PartnerDep,
    session: SessionDep,
    runtime: RuntimeDep,
    file: Annotated[UploadFile, File(description="CSV (UTF-8) or XLSX; first row = column headers")],
    columns: Annotated[
        str | None, Form(description='JSON {"target field": "column header"}; default: headers are field names')
    ] = None,
) -> BatchResult:
    """The file is stored, then streamed in chunks in the background: poll `GET /v1/imports/{id}` for progress and
    fetch `GET /v1/imports/{id}/errors.csv` for the rejected rows. Interrupted imports resume where they stopped."""
    settings: Settings = runtime.settings  # type: ignore[assignment]
    name = file.filename or "upload"
    file_format = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if file_format not in files.FORMATS:
        raise Problem(422, "file: must be a .csv or .xlsx file", errors=[{"field": "file", "message": "csv or xlsx"}])
    column_map: dict[str, str] | None = None
    if columns:
        try:
            parsed = json.loads(columns)
            if not isinstance(parsed, dict):
                raise files.ColumnMapError("columns: must be a JSON object")
            column_map = {str(k): str(v) for k, v in parsed.items()}
            files.validate_column_map(column_map)
        except (ValueError, files.ColumnMapError) as exc:
            field = str(exc).split(":", 1)[0] if isinstance(exc, files.ColumnMapError) else "columns"
            raise Problem(422, str(exc), errors=[{"field": field, "message": str(exc)}]) from exc
    batch = ImportBatch(
        tenant_id=caller.tenant_id,
        partner_id=caller.partner_id,
        kind="file",
        status="running",
        filename=name[:300],
        file_format=file_format,
        column_map=column_map,
        results=[],
    )
    session.add(batch)
    await session.flush()
    target = files.import_dir(settings.import_dir) / f"{batch.id}.{file_format}"
    size = 0
    with target.open("wb") as out:
        while chunk := await file.read(1024 * 1024):
            size += len(chunk)
            if size > settings.max_import_bytes:
                out.close()
                target.unlink(missing_ok=True)
                raise Problem(413, f"file: larger than {settings.max_import_bytes} bytes")
            await asyncio.to_thread(out.write, chunk)
    batch.stored_path = str(target)
    await session.commit()
    runtime.spawn(
        files.process_import(runtime.sessions, batch.id, settings.events_subject_prefix),  # type: ignore[arg-type]
        f"import-{batch.id}",
    )
    await session.refresh(batch)
    return batch_result(batch)


@partner_router.get(
    "/imports/{import_id}/errors.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
    summary="Error report of an import: one line per rejected row",
)
async def import_errors(
    import_id: uuid.UUID, caller: PartnerDep, session: SessionDep, runtime: RuntimeDep
) -> StreamingResponse:
    batch = await service.get_import(session, caller.tenant_id, import_id)
    if batch is None or batch.partner_id != caller.partner_id:
        raise not_found("import", import_id)
    await session.commit()
    sessions = runtime.sessions
    assert sessions is not None

    async def lines() -> AsyncIterator[bytes]:
        yield "\ufeffrow,external_id,reason\r\n".encode()
        after = 0
        while True:
            async with sessions() as own:  # the request's session is closed once streaming starts
                page = await service.import_error_page(own, caller.tenant_id, import_id, after=after, limit=1000)
            if not page:
                return
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            for row in page:
                writer.writerow([row.row_number, row.external_id or "", row.reason])
                after = row.row_number
            yield buffer.getvalue().encode()

    filename = f"import-{import_id}-errors.csv"
    return StreamingResponse(
        lines(), media_type="text/csv", headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )
