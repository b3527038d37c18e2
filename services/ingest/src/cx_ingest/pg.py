"""Raw asyncpg for the partner ingest hot path, and one way to run the same SQL through a SQLAlchemy session.

The partner batch endpoints (`/v1/feedback:batch`, `/v1/odata/{kind}:batch`) and partner authentication run on a
plain asyncpg pool (`CX_INGEST_FAST_POOL_SIZE` connections): an explicit transaction per request, statements
prepared once per connection, no ORM or SQLAlchemy execution layer in between (that layer cost several ms of CPU
per 100-record batch). Everything else uses the SQLAlchemy session as before.

The ingest core (`feedback.service.store_feedback`, the upserts, the outbox) is written once against `Db`, which
either wraps an asyncpg connection (`ConnDb`) or a SQLAlchemy session (`SessionDb`, used by file imports and event
consumers, whose transactions are owned by the session). SQL is written with `:name` parameters (`Sql`); the asyncpg
form uses `$n` placeholders derived from them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import Any, Protocol

import asyncpg
from fastapi import Request
from sqlalchemy import TextClause, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from cx_common.errors import Problem

POOL_KEY = "pg_pool"

_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


class Sql:
    """One statement with `:name` parameters, usable by both `Db` implementations."""

    def __init__(self, template: str) -> None:
        self.clause: TextClause = text(template)
        self.names: list[str] = []

        def number(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self.names:
                self.names.append(name)
            return f"${self.names.index(name) + 1}"

        self.native = _PARAM.sub(number, template)

    def args(self, params: dict[str, Any]) -> list[Any]:
        return [params[name] for name in self.names]


Row = Sequence[Any]


class Db(Protocol):
    async def fetch(self, sql: Sql, **params: Any) -> Sequence[Row]: ...

    async def execute(self, sql: Sql, **params: Any) -> None: ...

    def savepoint(self) -> AbstractAsyncContextManager[Any]:
        """A savepoint in the caller's transaction: rolled back to when the block raises."""
        ...


class ConnDb:
    """An asyncpg connection; the caller owns the transaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def fetch(self, sql: Sql, **params: Any) -> Sequence[Row]:
        rows: list[asyncpg.Record] = await self.conn.fetch(sql.native, *sql.args(params))
        return rows

    async def execute(self, sql: Sql, **params: Any) -> None:
        await self.conn.execute(sql.native, *sql.args(params))

    def savepoint(self) -> AbstractAsyncContextManager[Any]:
        savepoint: AbstractAsyncContextManager[Any] = self.conn.transaction()  # nested in the caller's: a savepoint
        return savepoint


class SessionDb:
    """A SQLAlchemy session; statements run in the session's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def fetch(self, sql: Sql, **params: Any) -> Sequence[Row]:
        return (await self.session.execute(sql.clause, params)).all()

    async def execute(self, sql: Sql, **params: Any) -> None:
        await self.session.execute(sql.clause, params)

    def savepoint(self) -> AbstractAsyncContextManager[Any]:
        return self.session.begin_nested()


def dsn(database_url: str) -> str:
    """The asyncpg DSN of a SQLAlchemy URL (`postgresql+asyncpg://…` → `postgresql://…`)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without the reset query (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL: a round trip per release):
    this pool's users never change session state. asyncpg still rolls back a transaction left open."""


async def create_pool(database_url: str, schema: str, size: int) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn(database_url),
        min_size=1,
        max_size=size,
        reset=_keep_session,
        # Custom plans only: after five executions Postgres may switch a prepared statement to a generic plan
        # chosen without the parameter values; with statistics from when feedback_items was small, the generic
        # plan of the batch upsert probed natural keys through the tenant index, i.e. read every row of the
        # tenant (measured: 40 ms instead of 3 ms per 100-record batch at 30 000 rows, and growing). Planning the
        # few statements of a request with their values costs far less than that risk.
        server_settings={
            "search_path": schema,
            "application_name": f"cx-{schema}-fast",
            "plan_cache_mode": "force_custom_plan",
        },
    )


def pg_pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool | None = request.app.state.runtime.extras.get(POOL_KEY)
    if pool is None:
        raise Problem(503, "database is not configured")
    return pool


# Connection-level failures (Postgres restarted or unreachable, a pooled connection closed by the server):
# the request did not complete, and the same request may simply be sent again.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)


@contextmanager
def unavailable_as_503() -> Iterator[None]:
    """Connection failures -> 503 problem+json with Retry-After (a broken pooled connection is dropped by the pool,
    so the next request gets a fresh one)."""
    try:
        yield
    except UNAVAILABLE as exc:
        raise Problem(
            503,
            "database unavailable: send the request again (with the same Idempotency-Key)",
            headers={"Retry-After": "1"},
        ) from exc


def refused_value(exc: BaseException) -> bool:
    """Postgres refused a value (SQLSTATE class 22, data exception; 23, integrity violation): the fault of a row,
    not of the request or the connection. Works for asyncpg's errors and SQLAlchemy's wrappers of them."""
    code = getattr(exc, "sqlstate", None) or getattr(getattr(exc, "orig", None), "sqlstate", None)
    return isinstance(code, str) and code[:2] in ("22", "23")
