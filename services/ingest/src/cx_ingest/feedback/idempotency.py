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
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
from fastapi.responses import Response

from cx_common.errors import Problem
from cx_ingest.pg import ConnDb, Db, Row, Sql, unavailable_as_503

REPLAY_HEADER = "Idempotent-Replayed"

_STORED = Sql(
    "SELECT request_hash, status_code, response FROM idempotency_keys "
    "WHERE partner_id = CAST(:partner_id AS uuid) AND key = CAST(:key AS text)"
)
# Stores the key with its answer; a data-modifying CTE named `kept` (nothing when :key is NULL), so a handler can
# write it with its own last statement (`feedback.service.finish_batch`): one round trip less per request.
STORE_KEY = (
    "kept AS (INSERT INTO idempotency_keys (tenant_id, partner_id, key, request_hash, status_code, response) "
    "SELECT CAST(:tenant_id AS uuid), CAST(:partner_id AS uuid), CAST(:key AS text), CAST(:request_hash AS text), "
    "CAST(:status_code AS int), CAST(:response AS text) WHERE CAST(:key AS text) IS NOT NULL "
    "ON CONFLICT DO NOTHING RETURNING 1)"
)
_STORE = Sql(f"WITH {STORE_KEY} SELECT count(*) FROM kept")  # noqa: S608 - constant


class _RacedError(Exception):
    """A concurrent request with the same key committed first."""


@dataclass(frozen=True)
class KeyRecord:
    """The key of a request and what `STORE_KEY` stores with the answer."""

    tenant_id: uuid.UUID
    partner_id: uuid.UUID
    key: str | None
    request_hash: str
    status_code: int

    def params(self, response: str) -> dict[str, Any]:
        """The parameters of `STORE_KEY` (they include `:tenant_id` and `:partner_id`)."""
        return {
            "tenant_id": self.tenant_id,
            "partner_id": self.partner_id,
            "key": self.key,
            "request_hash": self.request_hash,
            "status_code": self.status_code,
            "response": response if self.key is not None else None,
        }


# A handler that stores the key itself: returns (JSON answer, whether the key was stored, i.e. `kept` had a row, or
# there is no key).
StoringHandler = Callable[[Db, KeyRecord], Awaitable[tuple[str, bool]]]


def fingerprint(route: str, body: bytes) -> str:
    """SHA-256 of the route and the raw request body: a retry sends the same bytes (the IETF draft
    httpapi-idempotency-key-header binds the key to the request payload)."""
    digest = hashlib.sha256(route.encode())
    digest.update(b"\n")
    digest.update(body)  # no copy of the body
    return digest.hexdigest()


def _check(key: str | None) -> None:
    if key is not None and not 1 <= len(key) <= 200:
        raise Problem(400, "Idempotency-Key: must be 1-200 characters", errors=[{"field": "Idempotency-Key"}])


async def run_idempotent(
    pool: asyncpg.Pool,
    *,
    tenant_id: uuid.UUID,
    partner_id: uuid.UUID,
    key: str | None,
    request_hash: str,
    handler: Callable[[Db], Awaitable[str]],
    status_code: int = 200,
    stored: Row | Literal[False] | None = False,
) -> Response:
    """Run `handler` (it returns the JSON answer) in one transaction, at most once per key; the key is stored after
    it. `stored`: the key's stored row when the caller looked it up already (None: not there), False: look it up."""

    async def storing(db: Db, record: KeyRecord) -> tuple[str, bool]:
        encoded = await handler(db)
        if record.key is None:
            return encoded, True
        return encoded, bool((await db.fetch(_STORE, **record.params(encoded)))[0][0])

    record = KeyRecord(tenant_id, partner_id, key, request_hash, status_code)
    return await run_idempotent_storing(pool, record, storing, stored=stored)


async def run_idempotent_storing(
    pool: asyncpg.Pool, record: KeyRecord, handler: StoringHandler, *, stored: Row | Literal[False] | None = False
) -> Response:
    """`run_idempotent` for a handler that stores the key (with `STORE_KEY`) in its own last statement."""
    _check(record.key)
    with unavailable_as_503():
        return await _run(pool, record, handler, stored)


async def _run(
    pool: asyncpg.Pool, record: KeyRecord, handler: StoringHandler, stored: Row | Literal[False] | None
) -> Response:
    if record.key is not None and stored is not None and stored is not False:
        return _replay(stored, record.request_hash)
    async with pool.acquire() as conn:
        db = ConnDb(conn)
        if record.key is None:
            async with conn.transaction():
                encoded, _ = await handler(db, record)
            return _response(encoded, record.status_code)
        if stored is False:
            found = await db.fetch(_STORED, partner_id=record.partner_id, key=record.key)
            if found:
                return _replay(found[0], record.request_hash)
        try:
            async with conn.transaction():
                encoded, kept = await handler(db, record)
                if not kept:
                    raise _RacedError
        except _RacedError:
            found = await db.fetch(_STORED, partner_id=record.partner_id, key=record.key)
            return _replay(found[0], record.request_hash)
    return _response(encoded, record.status_code)


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
