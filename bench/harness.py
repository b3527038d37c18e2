"""Pieces every HTTP benchmark needs: a server process to measure and a cheap reader of HTTP/1.1 answers for the
load generators (raw asyncio streams, so the generator itself costs little next to the server it loads)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import httpx

from cx_local.ports import free_port

ROOT = Path(__file__).resolve().parents[1]


class Pg(NamedTuple):
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
    """`url` pointing at database `name` (as `user` when given)."""
    scheme, rest = url.split("://", 1)
    creds, host_db = rest.split("@", 1)
    if user is not None:
        creds = f"{user}:{password}"
    return f"{scheme}://{creds}@{host_db.rsplit('/', 1)[0]}/{name}"


class Server(NamedTuple):
    port: int
    pid: int


@contextmanager
def serve(target: str, env: dict[str, str], *, start_timeout_s: float = 90) -> Iterator[Server]:
    """`uvicorn --factory target` (one worker, no access log) on a free port; yields once /healthz answers 200 and
    stops the process afterwards (SIGTERM, then SIGKILL after 10 s)."""
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "--factory", target, "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--log-level", "warning", "--no-access-log"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + start_timeout_s
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


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """(status, body) of one HTTP/1.1 answer with a Content-Length (chunked answers are not expected here)."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("server closed the connection")
    status = int(status_line.split(b" ", 2)[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        elif name.strip().lower() == b"transfer-encoding":
            raise ValueError("chunked answers are not expected here")
    return status, await reader.readexactly(length)
