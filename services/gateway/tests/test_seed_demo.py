"""`cx-gateway seed-demo` as the launcher runs it: a real process against a migrated database, twice."""

import asyncio
import os
import sys
from pathlib import Path

import asyncpg

from cx_gateway.settings import SCHEMA

SERVICE_DIR = Path(__file__).resolve().parents[1]


async def run_cli(env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cx_gateway.cli",
        "seed-demo",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    return proc.returncode or 0, out.decode()


async def test_seed_demo_is_idempotent_and_prints_logins(cx_service_db):
    db = await cx_service_db(SERVICE_DIR, SCHEMA)
    env = {
        **os.environ,
        "CX_GATEWAY_DATABASE_URL": db.url,
        "CX_GATEWAY_PORT": "8123",
        "CX_GATEWAY_PASSWORD_TIME_COST": "1",
        "CX_GATEWAY_PASSWORD_MEMORY_KIB": "1024",
        # no survey/ingest/alerts here (test_demo_data loads into real ones): the org part still works
        "CX_SURVEY_URL": "http://127.0.0.1:9",
        "CX_INGEST_URL": "http://127.0.0.1:9",
        "CX_ALERTS_URL": "http://127.0.0.1:9",
    }
    code, out = await run_cli(env)
    assert code == 0, out
    assert "console: http://127.0.0.1:8123/console" in out
    assert "store.manager@demo.cx" in out and "cx-demo-manager" in out
    assert "sample data skipped: not reachable: http://127.0.0.1:9" in out
    code, again = await run_cli(env)
    assert code == 0, again
    assert "already present" in again and "cx-demo-" not in again
    conn = await asyncpg.connect(db.admin_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM gateway.tenants") == 1
        assert await conn.fetchval("SELECT count(*) FROM gateway.org_units") == 8
        assert await conn.fetchval("SELECT count(*) FROM gateway.users") == 7
        assert await conn.fetchval("SELECT count(*) FROM gateway.kpis") == 1
        kinds = dict(await conn.fetch("SELECT kind, count(*) FROM gateway.org_units GROUP BY kind"))
        assert kinds == {"hq": 1, "region": 2, "store": 4, "department": 1}
        managed = await conn.fetchval("SELECT count(*) FROM gateway.org_units WHERE manager_user_id IS NOT NULL")
        assert managed == 4
        assert await conn.fetchval("SELECT count(*) FROM gateway.demo_loads") == 0
    finally:
        await conn.close()


async def test_seed_demo_without_database_fails_cleanly():
    env = {k: v for k, v in os.environ.items() if "DATABASE_URL" not in k}
    code, out = await run_cli(env)
    assert code == 2 and "no database URL" in out
