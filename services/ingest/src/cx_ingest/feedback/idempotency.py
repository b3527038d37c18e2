"""`Idempotency-Key` for partner requests: same key + same body -> the stored response, nothing created;
same key + different body -> 422. The key row is inserted first in the request's transaction, so a concurrent
request with the same key waits on the unique index and then sees the committed response."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.responses import Response
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from cx_common.errors import Problem
from cx_ingest.feedback.models import IdempotencyRecord
from cx_ingest.feedback.service import canonical_hash

REPLAY_HEADER = "Idempotent-Replayed"


async def run_idempotent(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    partner_id: uuid.UUID,
    key: str | None,
    fingerprint: Any,
    handler: Callable[[], Awaitable[dict[str, Any]]],
    status_code: int = 200,
) -> Response:
    if key is None:
        body = await handler()
        await session.commit()
        return _response(_encode(body), status_code)
    if not 1 <= len(key) <= 200:
        raise Problem(400, "Idempotency-Key: must be 1-200 characters", errors=[{"field": "Idempotency-Key"}])
    request_hash = canonical_hash(fingerprint)
    claimed = (
        await session.execute(
            pg_insert(IdempotencyRecord)
            .values(tenant_id=tenant_id, partner_id=partner_id, key=key, request_hash=request_hash)
            .on_conflict_do_nothing()
            .returning(IdempotencyRecord.key)
        )
    ).first()
    if claimed is None:
        existing = (
            await session.execute(
                select(IdempotencyRecord).where(
                    IdempotencyRecord.partner_id == partner_id, IdempotencyRecord.key == key
                )
            )
        ).scalar_one()
        await session.commit()  # keeps last_used_at bookkeeping of the auth step
        if existing.request_hash != request_hash:
            raise Problem(
                422,
                "Idempotency-Key: was already used with a different request body",
                errors=[{"field": "Idempotency-Key", "message": "reused with a different body"}],
            )
        return _response(existing.response or "", existing.status_code, replayed=True)
    encoded = _encode(await handler())
    await session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.partner_id == partner_id, IdempotencyRecord.key == key)
        .values(response=encoded, status_code=status_code)
    )
    await session.commit()
    return _response(encoded, status_code)


def _encode(body: dict[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def _response(encoded: str, status_code: int, *, replayed: bool = False) -> Response:
    headers = {REPLAY_HEADER: "true"} if replayed else None
    return Response(encoded.encode(), status_code=status_code, media_type="application/json", headers=headers)
