"""One schema and one login role per service; the role can use only its own schema."""

from __future__ import annotations

import asyncio
import re

import asyncpg

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def role_name(schema: str) -> str:
    return f"cx_{schema}"


def _ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"unsafe SQL identifier: {name!r}")
    return f'"{name}"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


async def provision_schema(admin_url: str, database: str, schema: str, password: str) -> None:
    """Idempotent: create/refresh the role, create its schema owned by it, lock everything else down."""
    role = role_name(schema)
    conn = await asyncpg.connect(admin_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
        verb = "ALTER" if exists else "CREATE"
        await conn.execute(
            f"{verb} ROLE {_ident(role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT "
            f"PASSWORD {_literal(password)}"
        )
        await conn.execute(f"ALTER ROLE {_ident(role)} SET search_path = {_ident(schema)}")
    finally:
        await conn.close()
    # Schema-level statements run inside the target database.
    db_url = admin_url.rsplit("/", 1)[0] + "/" + database
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(f"REVOKE ALL ON DATABASE {_ident(database)} FROM PUBLIC")
        await conn.execute(f"GRANT CONNECT ON DATABASE {_ident(database)} TO {_ident(role)}")
        await conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_ident(schema)} AUTHORIZATION {_ident(role)}")
        await conn.execute(f"ALTER SCHEMA {_ident(schema)} OWNER TO {_ident(role)}")
    finally:
        await conn.close()


async def create_database(admin_url: str, name: str, template: str | None = None) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        clause = f" TEMPLATE {_ident(template)} STRATEGY FILE_COPY" if template else ""
        await conn.execute(f"CREATE DATABASE {_ident(name)}{clause}")
    finally:
        await conn.close()


async def drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")
    finally:
        await conn.close()


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]
