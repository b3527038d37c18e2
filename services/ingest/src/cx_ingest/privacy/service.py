import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from cx_common.db import utcnow
from cx_ingest.privacy.models import PrivacySettings
from cx_ingest.privacy.redact import Redactor, compile_custom
from cx_ingest.privacy.schemas import PrivacySettingsIn, PrivacySettingsRead


@dataclass(frozen=True)
class TenantPrivacy:
    keep_raw: bool
    redactor: Redactor


async def read(session: AsyncSession, tenant_id: uuid.UUID) -> PrivacySettingsRead:
    row = await session.get(PrivacySettings, tenant_id)
    if row is None:
        return PrivacySettingsRead()
    return PrivacySettingsRead(keep_raw=row.keep_raw, custom_patterns=row.custom_patterns)


async def save(session: AsyncSession, tenant_id: uuid.UUID, data: PrivacySettingsIn) -> PrivacySettingsRead:
    patterns = [p.model_dump() for p in data.custom_patterns]
    compile_custom(patterns)  # raises PatternError naming the bad pattern
    stmt = pg_insert(PrivacySettings).values(tenant_id=tenant_id, keep_raw=data.keep_raw, custom_patterns=patterns)
    stmt = stmt.on_conflict_do_update(
        index_elements=[PrivacySettings.tenant_id],
        set_={"keep_raw": data.keep_raw, "custom_patterns": patterns, "updated_at": utcnow()},
    )
    await session.execute(stmt)
    return PrivacySettingsRead.model_validate(data.model_dump())


async def load(session: AsyncSession, tenant_id: uuid.UUID) -> TenantPrivacy:
    row = (await session.execute(select(PrivacySettings).where(PrivacySettings.tenant_id == tenant_id))).scalar()
    if row is None:
        return TenantPrivacy(keep_raw=False, redactor=Redactor())
    return TenantPrivacy(keep_raw=row.keep_raw, redactor=Redactor(compile_custom(row.custom_patterns)))
