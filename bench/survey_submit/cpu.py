"""CPU accounting from /proc (Linux): what each server process, Postgres and the load generator spent during a
measured run, and how busy the machine was with everything else — so a run on a shared machine says how loaded it
was, and each peer's cost per response is shown apart from the throughput the machine happened to allow."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each of these processes so far (gone ones are left out)."""
    out = {}
    for pid in pids:
        fields = _stat(pid)
        if fields:
            out[pid] = (int(fields[11]) + int(fields[12])) / _TICK
    return out


def _delta(end: dict[int, float], begin: dict[int, float]) -> float:
    """CPU spent in between: processes started meanwhile count from zero."""
    return sum(v - begin.get(pid, 0.0) for pid, v in end.items())


def reaped_seconds(pid: int) -> float:
    """CPU seconds of the process's children that have exited (Postgres backends of closed connections)."""
    fields = _stat(pid)
    return (int(fields[13]) + int(fields[14])) / _TICK if fields else 0.0


def with_children(pid: int) -> list[int]:
    """The process and its direct children (a postmaster and its backends, checkpointer, ...)."""
    found = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all cores; user, nice, system, irq, softirq, steal)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICK


@dataclass
class Sample:
    """Seconds: wall clock, and CPU of the server, Postgres, the load generator and the whole machine."""

    wall: float
    server: float
    postgres: float
    loadgen: float
    machine: float

    def others(self) -> float:
        """CPU the machine spent on anything but this measurement (other users' work), in cores."""
        own = self.server + self.postgres + self.loadgen
        return max(0.0, self.machine - own) / self.wall if self.wall else 0.0


class Meter:
    """`start()` before a measured run, `stop()` after: seconds of CPU spent by each party in between."""

    def __init__(self, server_pid: int, postmaster_pid: int | None) -> None:
        self.server_pid = server_pid
        self.postmaster_pid = postmaster_pid
        self._begin: tuple[float, dict[int, float], dict[int, float], float, float] | None = None

    def _read(self) -> tuple[float, dict[int, float], dict[int, float], float, float]:
        pg = {}
        if self.postmaster_pid:
            pg = process_seconds(with_children(self.postmaster_pid))
            pg[-self.postmaster_pid] = reaped_seconds(self.postmaster_pid)  # backends that came and went
        server = process_seconds([self.server_pid])
        return time.perf_counter(), server, pg, time.process_time(), machine_busy_seconds()

    def start(self) -> None:
        self._begin = self._read()

    def stop(self) -> Sample:
        assert self._begin is not None
        (w1, s1, p1, l1, m1), (w0, s0, p0, l0, m0) = self._read(), self._begin
        return Sample(wall=w1 - w0, server=_delta(s1, s0), postgres=_delta(p1, p0), loadgen=l1 - l0, machine=m1 - m0)
