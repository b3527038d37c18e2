import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from cx_common.auth import Principal
from cx_common.db import utcnow
from cx_survey.audit.models import AuditEntry

SURVEY_FIELDS = ("title", "status", "current_version", "touchpoint_id", "quota", "definition")


def snapshot(obj: Any, fields: tuple[str, ...] = SURVEY_FIELDS) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in fields:
        value = getattr(obj, name)
        out[name] = str(value) if isinstance(value, uuid.UUID) else value
    return out


def record(
    session: AsyncSession,
    principal: Principal,
    action: str,
    entity_type: str,
    entity_id: object,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    session.add(
        AuditEntry(
            tenant_id=principal.tenant_id,
            actor=principal.user_id,
            action=action,
            entity_type=entity_type,
            entity_id=str(entity_id),
            before=before,
            after=after,
            at=utcnow(),
        )
    )
