"""A plain asyncpg connection pool for the response-submission hot path.

Submitting a response is one SQL statement (see `responses/submission.py`). Through the SQLAlchemy session that
statement costs five round trips more than it needs: the pool's pre-ping (BEGIN, `;`, ROLLBACK), then BEGIN and COMMIT
around it. asyncpg's own pool avoids those but spends about 50 µs of CPU per use (holders, timeouts, a shielded
release, a reset query — one more round trip), as much as the statement itself. This pool does only what the hot path
needs: it lends a connection for one statement and takes it back (last in, first out, so the busy ones stay warm).
It connects as the service's role with the service's `search_path`; everything else in the service uses the
SQLAlchemy engine.

A statement that fails with a Postgres error leaves its connection usable (a single statement is its own transaction,
rolled back by the server). Any other failure — a dropped connection, a cancelled request — closes the connection
instead of returning it, and the statement is sent once more on another connection.
"""

from __future__ import annotations

import asyncio
import collections
import json
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from cx_common.app import Runtime
from cx_common.logging import get_logger

log = get_logger(__name__)
POOL = "submit_pool"
# The errors after which the statement is sent again on another connection.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,  # e.g. the server's "terminating connection" met the next statement
    ConnectionError,
)


def plain_dsn(url: str) -> str:
    """`postgresql+asyncpg://…` (SQLAlchemy's form) → `postgresql://…` (asyncpg's)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class Pool:
    """At most `size` connections, each lent for one statement at a time; callers beyond that wait in turn."""

    def __init__(self, dsn: str, *, size: int, server_settings: dict[str, str]) -> None:
        self.dsn = dsn
        self.size = size
        self.server_settings = server_settings
        self.open = 0  # connections that exist or are being made
        self._idle: list[Any] = []
        self._waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._closed = False

    async def fetchrow(self, query: str, *args: Any) -> Any:
        """Run one statement; on a dropped connection, once more on another (every statement sent through this pool
        must be safe to send twice: reads, and the submission, which is idempotent on its submission key)."""
        try:
            return await self._fetchrow(query, *args)
        except CONNECTION_ERRORS:
            if self._closed:
                raise
            return await self._fetchrow(query, *args)

    async def _fetchrow(self, query: str, *args: Any) -> Any:
        conn = await self._acquire()
        try:
            row = await conn.fetchrow(query, *args)
        except asyncpg.PostgresError as exc:
            if isinstance(exc, asyncpg.exceptions.PostgresConnectionError):
                self._discard(conn)
            else:
                self._release(conn)
            raise
        except BaseException:
            self._discard(conn)  # dropped, or cancelled mid-protocol: never lend it again
            raise
        self._release(conn)
        return row

    async def _connect(self) -> Any:
        conn = await asyncpg.connect(self.dsn, server_settings=self.server_settings)
        await conn.set_type_codec("jsonb", encoder=dumps, decoder=json.loads, schema="pg_catalog")
        return conn

    async def _acquire(self) -> Any:
        if self._closed:
            raise ConnectionError("the submission pool is closed")
        while self._idle:
            conn = self._idle.pop()
            if not conn.is_closed():
                return conn
            self.open -= 1
        if self.open >= self.size:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                handed = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    if (conn := waiter.result()) is not None:
                        self._release(conn)  # handed over just as this caller gave up
                    else:
                        self.open -= 1  # the slot counted for this caller: pass it on
                        self._wake()
                raise
            if handed is not None:
                return handed
        else:  # a free slot: this caller makes the connection
            self.open += 1
        try:
            return await self._connect()
        except BaseException:
            self.open -= 1
            self._wake()
            raise

    def _release(self, conn: Any) -> None:
        if self._closed:
            self._discard(conn)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    def _discard(self, conn: Any) -> None:
        conn.terminate()
        self.open -= 1
        self._wake()

    def _wake(self) -> None:
        """A slot is free: the next waiter makes a new connection (its slot counted when it does)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.open += 1
                waiter.set_result(None)
                return

    async def close(self) -> None:
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectionError("the submission pool is closed"))
        idle, self._idle = self._idle, []
        for conn in idle:
            self.open -= 1
            try:
                await asyncio.wait_for(conn.close(), timeout=2.0)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                conn.terminate()


async def open_pool(runtime: Runtime) -> None:
    settings = runtime.settings
    if not settings.database_url:
        return
    runtime.extras[POOL] = Pool(
        plain_dsn(settings.database_url),
        size=int(getattr(settings, "submit_pool_size", 10)),
        server_settings={"search_path": settings.db_schema, "application_name": f"cx-{settings.db_schema}-submit"},
    )


async def close_pool(runtime: Runtime) -> None:
    pool = runtime.extras.pop(POOL, None)
    if pool is not None:
        await pool.close()


def pool_of(runtime: Runtime) -> Pool | None:
    found = runtime.extras.get(POOL)
    return found if isinstance(found, Pool) else None
