"""Processes and Postgres for the ingest benchmark: the shared harness (bench.harness) plus CPU accounting."""

from __future__ import annotations

import os
from pathlib import Path

from bench.harness import ROOT, Pg, Server, free_port, postgres, serve, with_database

__all__ = ["ROOT", "Pg", "Server", "cpu_seconds", "free_port", "postgres", "serve", "tree_cpu_seconds", "with_database"]

TICKS = os.sysconf("SC_CLK_TCK")


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
