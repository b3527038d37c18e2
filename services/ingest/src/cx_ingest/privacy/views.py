from typing import Annotated

from fastapi import APIRouter, Depends

from cx_common.app import SessionDep
from cx_common.auth import Principal, require_scopes
from cx_common.errors import Problem
from cx_ingest.privacy import service
from cx_ingest.privacy.redact import PatternError
from cx_ingest.privacy.schemas import PrivacySettingsIn, PrivacySettingsRead, RedactTest, RedactTestResult

router = APIRouter(prefix="/v1/privacy", tags=["privacy"])

Reader = Annotated[Principal, Depends(require_scopes("privacy:read"))]
Writer = Annotated[Principal, Depends(require_scopes("privacy:write"))]


@router.get("/settings", response_model=PrivacySettingsRead)
async def get_settings(session: SessionDep, principal: Reader) -> PrivacySettingsRead:
    return await service.read(session, principal.tenant_id)


@router.put("/settings", response_model=PrivacySettingsRead)
async def put_settings(body: PrivacySettingsIn, session: SessionDep, principal: Writer) -> PrivacySettingsRead:
    """Whether raw originals are kept, and tenant-defined redaction patterns (validated: compile, not empty-match)."""
    try:
        result = await service.save(session, principal.tenant_id, body)
    except PatternError as exc:
        field = str(exc).split(":", 1)[0]
        raise Problem(422, str(exc), errors=[{"field": field, "message": str(exc)}]) from exc
    await session.commit()
    return result


@router.post("/redact:test", response_model=RedactTestResult)
async def redact_test(body: RedactTest, session: SessionDep, principal: Reader) -> RedactTestResult:
    """Redact a sample text with this tenant's settings."""
    privacy = await service.load(session, principal.tenant_id)
    redaction = privacy.redactor.redact(body.text)
    return RedactTestResult(text=redaction.text, counts=redaction.counts)
