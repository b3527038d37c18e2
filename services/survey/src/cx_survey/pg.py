"""A plain asyncpg pool for the response-submission hot path.

Submitting a response is one SQL statement (see `responses/submission.py`). Through the SQLAlchemy session that
statement costs five round trips more than it needs: the pool's pre-ping (BEGIN, `;`, ROLLBACK), then BEGIN and
COMMIT around the statement. This pool connects as the same role with the same `search_path`, does none of that, and
sends the statement as its own implicit transaction. Everything else in the service uses the SQLAlchemy engine.

A dropped connection is detected by the statement that uses it (and retried once by the caller: the statement is
idempotent); the pool replaces it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from cx_common.app import Runtime
from cx_common.logging import get_logger

log = get_logger(__name__)
POOL = "submit_pool"
# The errors after which the same statement may be sent again on another connection.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    ConnectionError,
)


def plain_dsn(url: str) -> str:
    """`postgresql+asyncpg://…` (SQLAlchemy's form) → `postgresql://…` (asyncpg's)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


async def _init(conn: Any) -> None:
    await conn.set_type_codec("jsonb", encoder=dumps, decoder=json.loads, schema="pg_catalog")


async def _keep(conn: Any) -> None:
    """Release without asyncpg's reset query (a round trip per use): the statements sent through this pool never
    leave session state behind — no transaction is left open (asyncpg rolls one back anyway), no SET, LISTEN,
    cursor or advisory lock."""


async def open_pool(runtime: Runtime) -> None:
    settings = runtime.settings
    if not settings.database_url:
        return
    size = int(getattr(settings, "submit_pool_size", 10))
    runtime.extras[POOL] = await asyncpg.create_pool(
        plain_dsn(settings.database_url),
        min_size=0,  # connect on first use, like the SQLAlchemy engine: a service starts while Postgres is down
        max_size=size,
        init=_init,
        reset=_keep,
        server_settings={"search_path": settings.db_schema, "application_name": f"cx-{settings.db_schema}-submit"},
    )


async def close_pool(runtime: Runtime) -> None:
    pool = runtime.extras.pop(POOL, None)
    if pool is None:
        return
    try:
        await asyncio.wait_for(pool.close(), timeout=5.0)
    except TimeoutError:
        log.warning("submit_pool_close_timeout")
        pool.terminate()


def pool_of(runtime: Runtime) -> Any | None:
    return runtime.extras.get(POOL)
