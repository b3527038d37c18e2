"""`Idempotency-Key` for partner requests: the same key with the same body answers the stored response byte for
byte and creates nothing; the same key with another body -> 422.

Protocol (one pooled connection): look the key up (a read); unknown -> do the work and store the key with the
answer in the same transaction, `ON CONFLICT DO NOTHING`. If a concurrent request with the same key committed
first, that insert finds its row: the whole transaction is rolled back (nothing of this request remains) and the
stored answer is returned. One write per request instead of a claim row plus an update of it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
from fastapi.responses import Response

from cx_common.errors import Problem
from cx_ingest.pg import ConnDb, Db, Row, Sql, unavailable_as_503

REPLAY_HEADER = "Idempotent-Replayed"

_STORED = Sql(
    "SELECT request_hash, status_code, response FROM idempotency_keys "
    "WHERE partner_id = CAST(:partner_id AS uuid) AND key = CAST(:key AS text)"
)
_STORE = Sql(
    "INSERT INTO idempotency_keys (tenant_id, partner_id, key, request_hash, status_code, response) "
    "VALUES (CAST(:tenant_id AS uuid), CAST(:partner_id AS uuid), CAST(:key AS text), CAST(:request_hash AS text), "
    "CAST(:status_code AS int), CAST(:response AS text)) ON CONFLICT DO NOTHING RETURNING 1"
)


class _RacedError(Exception):
    """A concurrent request with the same key committed first."""


def fingerprint(route: str, body: bytes) -> str:
    """SHA-256 of the route and the raw request body: a retry sends the same bytes (the IETF draft
    httpapi-idempotency-key-header binds the key to the request payload)."""
    return hashlib.sha256(route.encode() + b"\n" + body).hexdigest()


async def run_idempotent(
    pool: asyncpg.Pool,
    *,
    tenant_id: uuid.UUID,
    partner_id: uuid.UUID,
    key: str | None,
    request_hash: str,
    handler: Callable[[Db], Awaitable[str]],
    status_code: int = 200,
) -> Response:
    """Run `handler` (it returns the JSON answer) in one transaction, at most once per key."""
    if key is not None and not 1 <= len(key) <= 200:
        raise Problem(400, "Idempotency-Key: must be 1-200 characters", errors=[{"field": "Idempotency-Key"}])
    with unavailable_as_503():
        return await _run(pool, tenant_id, partner_id, key, request_hash, handler, status_code)


async def _run(
    pool: asyncpg.Pool,
    tenant_id: uuid.UUID,
    partner_id: uuid.UUID,
    key: str | None,
    request_hash: str,
    handler: Callable[[Db], Awaitable[str]],
    status_code: int,
) -> Response:
    async with pool.acquire() as conn:
        db = ConnDb(conn)
        if key is None:
            async with conn.transaction():
                return _response(await handler(db), status_code)
        stored = await db.fetch(_STORED, partner_id=partner_id, key=key)
        if stored:
            return _replay(stored[0], request_hash)
        try:
            async with conn.transaction():
                encoded = await handler(db)
                params = {"tenant_id": tenant_id, "partner_id": partner_id, "key": key, "request_hash": request_hash}
                if not await db.fetch(_STORE, status_code=status_code, response=encoded, **params):
                    raise _RacedError
        except _RacedError:
            return _replay((await db.fetch(_STORED, partner_id=partner_id, key=key))[0], request_hash)
    return _response(encoded, status_code)


def _replay(stored: Row, request_hash: str) -> Response:
    stored_hash, status_code, encoded = stored
    if stored_hash != request_hash:
        raise Problem(
            422,
            "Idempotency-Key: was already used with a different request body",
            errors=[{"field": "Idempotency-Key", "message": "reused with a different body"}],
        )
    return _response(encoded or "", status_code, replayed=True)


def _response(encoded: str, status_code: int, *, replayed: bool = False) -> Response:
    headers = {REPLAY_HEADER: "true"} if replayed else None
    return Response(encoded.encode(), status_code=status_code, media_type="application/json", headers=headers)
