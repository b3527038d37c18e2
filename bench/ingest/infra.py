"""Postgres, servers and CPU accounting for the ingest benchmark."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Pg:
    url: str  # superuser URL to the maintenance database
    postmaster: int | None  # pid when the server runs on this machine (for CPU accounting)


@contextmanager
def postgres() -> Iterator[Pg]:
    """CX_DATABASE_URL (a superuser URL) or an embedded throwaway server (fsync off)."""
    if url := os.environ.get("CX_DATABASE_URL"):
        yield Pg(url, None)
        return
    from cx_local.postgres import EmbeddedPostgres

    base = Path(tempfile.mkdtemp(prefix="cx-bench-pg-"))
    server = EmbeddedPostgres(base / "data", port=free_port(), durable=False)
    try:
        url = server.start().url(database="postgres")
        yield Pg(url, int((base / "data" / "postmaster.pid").read_text().split()[0]))
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def with_database(url: str, name: str, user: str | None = None, password: str | None = None) -> str:
    scheme, rest = url.split("://", 1)
    creds, host_db = rest.split("@", 1)
    if user is not None:
        creds = f"{user}:{password}"
    return f"{scheme}://{creds}@{host_db.rsplit('/', 1)[0]}/{name}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def tree_cpu_seconds(pid: int | None) -> float | None:
    """CPU of a process and its children (the postmaster and its backends), None when unknown."""
    if pid is None:
        return None
    total = cpu_seconds(pid)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


@dataclass(frozen=True)
class Server:
    port: int
    pid: int


@contextmanager
def serve(target: str, env: dict[str, str]) -> Iterator[Server]:
    """`uvicorn --factory target` (one worker) on a free port; yields once /healthz answers."""
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "--factory", target, "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--log-level", "warning", "--no-access-log"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{target} exited with {proc.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{target} did not start")
            time.sleep(0.2)
        yield Server(port, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
