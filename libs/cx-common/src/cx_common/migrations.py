"""Alembic helpers: each service migrates its own schema, with the version table inside that schema."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import async_engine_from_config

from cx_common.db import asyncpg_url

# Event plumbing every service has in its schema: created by each service's first migration.
EVENT_TABLES_DDL = (
    """
    CREATE TABLE IF NOT EXISTS outbox (
        id BIGSERIAL PRIMARY KEY,
        event_id UUID NOT NULL UNIQUE,
        subject TEXT NOT NULL,
        event_type TEXT NOT NULL,
        tenant_id TEXT NOT NULL,
        payload BYTEA NOT NULL,
        trace_id TEXT NOT NULL DEFAULT '',
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        published_at TIMESTAMPTZ,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT
    )
    """,
    "CREATE INDEX IF NOT EXISTS ix_outbox_unpublished ON outbox (id) WHERE published_at IS NULL",
    """
    CREATE TABLE IF NOT EXISTS processed_events (
        consumer TEXT NOT NULL,
        event_id UUID NOT NULL,
        event_type TEXT NOT NULL DEFAULT '',
        processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (consumer, event_id)
    )
    """,
)


def create_event_tables() -> None:
    """Call from a service's first migration (`upgrade()`)."""
    from alembic import op

    for ddl in EVENT_TABLES_DDL:
        op.execute(ddl)


def drop_event_tables() -> None:
    from alembic import op

    op.execute("DROP TABLE IF EXISTS processed_events")
    op.execute("DROP TABLE IF EXISTS outbox")


_UNMANAGED_TABLES = {"alembic_version", "outbox", "processed_events"}


def _include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    # Tables created by helpers rather than models must not show up as "drop" in autogenerate.
    return not (type_ == "table" and name in _UNMANAGED_TABLES)


def run_env(metadata: MetaData, schema: str, database_url: str | None) -> None:
    """Body of a service's `migrations/env.py`: online async migrations confined to `schema`."""
    config = context.config
    url = config.get_main_option("sqlalchemy.url") or database_url
    if not url:
        raise SystemExit(f"no database URL for schema {schema!r}: set CX_<SERVICE>_DATABASE_URL or CX_DATABASE_URL")

    def do_run(connection: Connection) -> None:
        exists = connection.execute(
            text("SELECT 1 FROM pg_namespace WHERE nspname = :schema"), {"schema": schema}
        ).first()
        if exists is None:  # normally provisioned by an admin with the role as owner
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        connection.execute(text(f'SET search_path TO "{schema}"'))
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table_schema=schema,
            include_schemas=False,
            include_object=_include_object,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        engine = async_engine_from_config(
            {"sqlalchemy.url": asyncpg_url(url)}, prefix="sqlalchemy.", poolclass=pool.NullPool
        )
        async with engine.begin() as connection:
            await connection.run_sync(do_run)
        await engine.dispose()

    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, version_table_schema=schema, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
    else:
        asyncio.run(run_async())


def alembic_config(service_dir: Path, database_url: str) -> Config:
    cfg = Config(str(service_dir / "alembic.ini"))
    cfg.set_main_option("script_location", str(service_dir / "migrations"))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(service_dir: Path, database_url: str, revision: str = "head") -> None:
    """Run a service's migrations (used by `cx-local`, the `<service> migrate` CLIs and test fixtures)."""
    command.upgrade(alembic_config(service_dir, database_url), revision)
