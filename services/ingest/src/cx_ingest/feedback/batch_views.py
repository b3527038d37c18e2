"""The partner batch endpoints: one transaction per request on the asyncpg pool (see `cx_ingest.pg`)."""

import functools
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from cx_common.app import RuntimeDep
from cx_common.logging import get_logger
from cx_common.textguard import json_may_hold_bad_text
from cx_ingest import pg
from cx_ingest.feedback import odata, service
from cx_ingest.feedback.idempotency import KeyRecord, fingerprint, run_idempotent, run_idempotent_storing
from cx_ingest.feedback.records import Source, parse_batch, read_batch
from cx_ingest.feedback.schemas import BatchIn, BatchResult
from cx_ingest.partners.auth import PartnerDep
from cx_ingest.settings import Settings

log = get_logger(__name__)
router = APIRouter(prefix="/v1", tags=["partner API"])
# The batch endpoints reject only the records holding text Postgres cannot store, not the whole request (see
# `cx_common.textguard`): the middleware leaves them alone.
BATCH_PATHS = ("/v1/feedback:batch", r"/v1/odata/[^/]+:batch")

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="Same key + same body -> same response, nothing created again"),
]
ODataKind = Annotated[str, Path(pattern=odata.ODATA_KIND.pattern, description="orders, customers, attributes, ...")]


BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": BatchIn.model_json_schema()}},
    }
}


def body_problem(exc: ValidationError) -> RequestValidationError:
    """The same 422 problem+json FastAPI gives for a bad body (fields under `body.`)."""
    return RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)])


def wake_worker(runtime: Any) -> None:
    event = runtime.extras.get("analysis_wakeup")
    if event is not None:
        event.set()


@router.post(
    "/feedback:batch",
    response_model=BatchResult,
    summary="Push up to 1,000 feedback items",
    responses={401: {"description": "bad API key"}, 422: {"description": "bad body / reused Idempotency-Key"}},
    openapi_extra=BODY,
)
async def feedback_batch(
    request: Request, caller: PartnerDep, runtime: RuntimeDep, idempotency_key: IdempotencyKey = None
) -> Any:
    """Items are mapped with the partner's field mapping (if any), validated one by one, PII-redacted and upserted by
    (partner, external_id). Each record gets `accepted` (created/updated), `duplicate` or `rejected` with a reason;
    good records are stored even when others are bad."""
    settings: Settings = runtime.settings  # type: ignore[assignment]
    source = Source(
        tenant_id=caller.tenant_id,
        source_key=f"partner:{caller.partner_id}",
        partner_id=caller.partner_id,
        default_channel=caller.default_channel,
        default_language=caller.default_language,
    )
    raw = await request.body()
    try:  # the body is read here, not by FastAPI: validated in one pass from the bytes (see parse_batch)
        total, (valid, results) = parse_batch(raw, caller.mapping)
    except ValidationError as exc:
        raise body_problem(exc) from exc

    async def handle(db: pg.Db, key: KeyRecord, *, one_by_one: bool = False) -> tuple[str, bool]:
        if one_by_one:
            stored, received = await service.upsert_one_by_one(db, source, valid, privacy=caller.privacy)
        else:
            stored, received = await service.upsert_feedback(db, source, valid, privacy=caller.privacy)
        ordered = [stored.get(i) or results[i] for i in range(total)]
        return await service.finish_batch(  # events, imports row and the key: one statement
            db, key, "feedback", ordered, received, subject_prefix=settings.events_subject_prefix
        )

    key = KeyRecord(caller.tenant_id, caller.partner_id, idempotency_key, fingerprint("feedback:batch", raw), 200)
    stored_answer = caller.stored_answer(idempotency_key)
    try:
        response = await run_idempotent_storing(pg.pg_pool(request), key, handle, stored=stored_answer)
    except Exception as exc:
        if not pg.refused_value(exc):
            raise
        # A value Postgres refused that no validation foresaw: the whole transaction is gone, so the request runs
        # again record by record, and only the records Postgres refuses are rejected.
        log.warning("batch_retried_by_record", error=str(exc).splitlines()[0][:300] if str(exc) else "")
        careful = functools.partial(handle, one_by_one=True)
        response = await run_idempotent_storing(pg.pg_pool(request), key, careful, stored=stored_answer)
    wake_worker(runtime)
    return response


@router.post(
    "/odata/{kind}:batch",
    response_model=BatchResult,
    summary="Upsert up to 1,000 O-data records",
    responses={401: {"description": "bad API key"}, 422: {"description": "bad body / reused Idempotency-Key"}},
    openapi_extra=BODY,
)
async def odata_batch(
    request: Request,
    kind: ODataKind,
    caller: PartnerDep,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Orders, customers, CRM attributes... upserted by (kind, record_key); emits `odata.upserted`."""
    settings: Settings = runtime.settings  # type: ignore[assignment]
    raw = await request.body()
    suspect = json_may_hold_bad_text(raw)
    try:
        body = read_batch(raw, suspect=suspect)
    except ValidationError as exc:
        raise body_problem(exc) from exc
    valid, results = odata.validate_odata(body.items, check_text=suspect)

    async def handle(db: pg.Db) -> str:
        stored = await odata.store_odata(
            db,
            caller.tenant_id,
            caller.partner_id,
            kind,
            valid,
            subject_prefix=settings.events_subject_prefix,
            source=service.SOURCE,
        )
        ordered = [stored.get(i) or results[i] for i in range(len(body.items))]
        return await service.record_import(db, caller.tenant_id, caller.partner_id, f"odata:{kind}", ordered)

    return await run_idempotent(
        pg.pg_pool(request),
        tenant_id=caller.tenant_id,
        partner_id=caller.partner_id,
        key=idempotency_key,
        request_hash=fingerprint(f"odata/{kind}:batch", raw),
        handler=handle,
        stored=caller.stored_answer(idempotency_key),
    )
