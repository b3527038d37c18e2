"""Child processes that die with the launcher and stop cleanly."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def spawn(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
    stdout: int | None = subprocess.PIPE,
    die_with_parent: bool = True,
) -> subprocess.Popen[bytes]:
    """Start a child in its own process group (Ctrl-C reaches the launcher only, which stops children in order)."""
    preexec: Callable[[], None] | None = _die_with_parent if die_with_parent and user is None else None
    return subprocess.Popen(  # noqa: S603 - arguments are built by the launcher, never from user input
        list(args),
        env=dict(env) if env is not None else None,
        cwd=cwd,
        stdout=stdout,
        stderr=subprocess.STDOUT if stdout is not None else None,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=preexec,
        user=user,
    )


def stop(
    proc: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, timeout: float = 15.0, group: bool = True
) -> None:
    """Signal the child (and by default its whole process group), wait, then kill whatever is left."""
    if proc.poll() is not None:
        return
    try:
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
