import json
import uuid
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from cx_common.db import utcnow
from cx_ingest.pg import Db, SessionDb, Sql
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


_LOAD = Sql(
    "SELECT keep_raw, CAST(custom_patterns AS text) FROM privacy_settings WHERE tenant_id = CAST(:tenant_id AS uuid)"
)
DEFAULT = TenantPrivacy(keep_raw=False, redactor=Redactor())


@lru_cache(maxsize=1024)
def _redactor(patterns_json: str) -> Redactor:
    """Compiled tenant patterns, by their JSON text: compiled once per process, not per request."""
    return Redactor(compile_custom(json.loads(patterns_json), strict=False))


def privacy_of(keep_raw: bool | None, patterns_json: str | None) -> TenantPrivacy:
    """The settings of a `privacy_settings` row (`keep_raw`, `custom_patterns` as JSON text); None: no row."""
    if keep_raw is None:
        return DEFAULT
    return TenantPrivacy(keep_raw=bool(keep_raw), redactor=_redactor(patterns_json or "[]"))


async def load_privacy(db: Db, tenant_id: uuid.UUID) -> TenantPrivacy:
    rows = await db.fetch(_LOAD, tenant_id=tenant_id)
    return privacy_of(*rows[0]) if rows else DEFAULT


async def load(session: AsyncSession, tenant_id: uuid.UUID) -> TenantPrivacy:
    return await load_privacy(SessionDb(session), tenant_id)
