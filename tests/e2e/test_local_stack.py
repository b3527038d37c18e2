"""`cx-local up` as a user runs it: real Postgres, NATS and all five services as processes; Ctrl-C leaves nothing
behind; a second `up` keeps the data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest

from cx_local.ports import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SERVICES = ("GATEWAY", "SURVEY", "INGEST", "ALERTS", "NLP_HTTP", "NLP_GRPC")


class Stack:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.ports = {name: free_port() for name in (*SERVICES, "PG", "NATS", "NATS_MONITOR")}
        # a small demo (the full one loads thousands of records): enough to prove it goes through the real APIs
        self.env = {**os.environ, "CX_STATE_DIR": str(state), "PYTHONUNBUFFERED": "1", "CX_LOCAL_DEMO_SCALE": "0.02"}
        for key in ("CX_DATABASE_URL", "CX_NATS_URL", "CX_NLP_GRPC_TARGET"):
            self.env.pop(key, None)
        self.env.update({f"CX_LOCAL_{name}_PORT": str(port) for name, port in self.ports.items()})
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self.ready = threading.Event()

    def up(self, timeout: float = 240) -> None:
        self.lines.clear()
        self.ready.clear()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cx_local.cli", "up", "--tiny-nlp"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

        def pump() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line.rstrip())
                if "cx-local: ready in" in line:
                    self.ready.set()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.5):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("stack did not start:\n" + "\n".join(self.lines[-40:]))

    def wait_for_line(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            assert self.proc is not None and self.proc.poll() is None, "\n".join(self.lines[-40:])
            time.sleep(0.5)
        raise AssertionError(f"no line with {text!r} after {timeout:.0f}s:\n" + "\n".join(self.lines[-40:]))

    def interrupt(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)  # what Ctrl-C delivers
        return self.proc.wait(timeout=90)

    def leftovers(self) -> list[str]:
        found = []
        markers = [str(self.state), *(f"--port {p}" for p in self.ports.values())]
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmdline = " ".join(proc.info["cmdline"] or [])
            if proc.info["pid"] != os.getpid() and any(m in cmdline for m in markers):
                found.append(cmdline)
        return found

    def admin_url(self) -> str:
        password = (self.state / "pg.password").read_text().strip()
        return f"postgresql://cx_admin:{password}@127.0.0.1:{self.ports['PG']}/cx"


@pytest.fixture
def stack(tmp_path):
    s = Stack(tmp_path / "state")
    yield s
    if s.proc is not None and s.proc.poll() is None:
        s.proc.kill()


async def test_up_serves_everything_then_ctrl_c_leaves_nothing_and_data_survives(stack: Stack):
    stack.up()
    output = "\n".join(stack.lines)
    for name in ("gateway", "survey", "ingest", "alerts", "nlp-http", "nlp-grpc"):
        assert name in output
    assert "store.manager@demo.cx" in output, "the demo logins are printed before the ready line"
    loaded = stack.wait_for_line("sample data loaded", timeout=180)
    assert "survey" in loaded and "feedback" in loaded and "alerts" in loaded, loaded
    async with httpx.AsyncClient(timeout=5) as client:
        for name in ("GATEWAY", "SURVEY", "INGEST", "ALERTS"):
            base = f"http://127.0.0.1:{stack.ports[name]}"
            ready = await client.get(f"{base}/readyz")
            assert ready.status_code == 200, (name, ready.text)
            assert ready.json()["checks"]["database"] == "ok"
            assert (await client.get(f"{base}/openapi.json")).status_code == 200
            assert "cx_http_requests_total" in (await client.get(f"{base}/metrics")).text
        assert (await client.get(f"http://127.0.0.1:{stack.ports['NLP_HTTP']}/readyz")).status_code == 200

    # Least privilege: each service role owns its schema and cannot read another's.
    conn = await asyncpg.connect(stack.admin_url())
    try:
        owners = dict(
            await conn.fetch(
                "SELECT nspname, pg_get_userbyid(nspowner) FROM pg_namespace "
                "WHERE nspname IN ('gateway','survey','ingest','alerts')"
            )
        )
        assert owners == {s: f"cx_{s}" for s in ("gateway", "survey", "ingest", "alerts")}
        assert not await conn.fetchval("SELECT has_schema_privilege('cx_survey', 'alerts', 'USAGE')")
        assert await conn.fetchval("SELECT count(*) FROM survey.alembic_version") == 1
        assert await conn.fetchval("SELECT count(*) FROM survey.responses") > 0
        assert await conn.fetchval("SELECT count(*) FROM ingest.feedback_items") > 0
        await conn.execute("CREATE TABLE IF NOT EXISTS gateway.e2e_marker (note text)")
        await conn.execute("INSERT INTO gateway.e2e_marker VALUES ('kept')")
    finally:
        await conn.close()

    status = subprocess.run(
        [sys.executable, "-m", "cx_local.cli", "status"], env=stack.env, capture_output=True, text=True, check=False
    )
    assert status.returncode == 0 and "running" in status.stdout

    assert stack.interrupt() == 0
    time.sleep(0.5)
    assert stack.leftovers() == []
    assert "cx-local: stopped" in stack.lines[-1]

    stack.up()  # second start keeps the data, and loads no demo part twice
    assert "already present" in "\n".join(stack.lines)
    stack.wait_for_line("sample data loaded: nothing new", timeout=120)
    conn = await asyncpg.connect(stack.admin_url())
    try:
        assert await conn.fetchval("SELECT note FROM gateway.e2e_marker") == "kept"
    finally:
        await conn.close()
    assert stack.interrupt() == 0
    time.sleep(0.5)
    assert stack.leftovers() == []
