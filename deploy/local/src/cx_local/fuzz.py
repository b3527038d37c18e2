"""Property-based fuzzing of a live service's OpenAPI with schemathesis: no 5xx, every response matches its schema.

Runs the schemathesis CLI as a subprocess against a server on a real socket (see `pytest_plugin.live_server`), so the
app keeps serving from the test's event loop while the fuzzer sends requests.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CHECKS = ("not_a_server_error", "response_schema_conformance", "status_code_conformance")


@dataclass(frozen=True)
class FuzzResult:
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _schemathesis() -> str:
    sibling = Path(sys.executable).with_name("schemathesis")
    return str(sibling) if sibling.exists() else (shutil.which("schemathesis") or "schemathesis")


async def fuzz_openapi(
    base_url: str,
    *,
    headers: Mapping[str, str] | None = None,
    schema_path: str = "/openapi.json",
    checks: Sequence[str] = DEFAULT_CHECKS,
    max_examples: int = 10,
    phases: str = "examples,coverage,fuzzing",
    include_path_regex: str | None = None,
    exclude_path_regex: str | None = None,
    exclude_method: Sequence[str] = (),
    seed: int = 20261125,
    max_time: int | None = None,
    report_dir: Path | None = None,
    deadline_s: float = 600,
) -> FuzzResult:
    args = [
        _schemathesis(),
        "run",
        f"{base_url}{schema_path}",
        "--checks",
        ",".join(checks),
        "--max-examples",
        str(max_examples),
        "--phases",
        phases,
        "--seed",
        str(seed),
        "--workers",
        "1",
        "--no-shrink",
        "--no-color",
        "--generation-database",
        "none",
        "--request-timeout",
        "20",
    ]
    for name, value in (headers or {}).items():
        args += ["--header", f"{name}: {value}"]
    if include_path_regex:
        args += ["--include-path-regex", include_path_regex]
    if exclude_path_regex:
        args += ["--exclude-path-regex", exclude_path_regex]
    for method in exclude_method:
        args += ["--exclude-method", method]
    if max_time is not None:
        args += ["--max-time", str(max_time)]
    if report_dir is not None:
        args += ["--report", "junit", "--report-dir", str(report_dir)]
    env = {**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false"}
    # schemathesis keeps a crash cache (.schemathesis/) in its working directory: keep it out of the checkout
    with tempfile.TemporaryDirectory(prefix="cx-fuzz-") as workdir:
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env, cwd=workdir
        )
        assert proc.stdout is not None
        stdout = proc.stdout
        chunks: list[bytes] = []

        async def collect() -> None:
            while chunk := await stdout.read(65536):
                chunks.append(chunk)

        reader = asyncio.create_task(collect())
        try:
            await asyncio.wait_for(proc.wait(), deadline_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            await reader
            # what it printed so far names the operation it was stuck on
            tail = b"".join(chunks).decode(errors="replace")[-6000:]
            return FuzzResult(124, f"schemathesis ran past {deadline_s}s; its output so far:\n{tail}")
        await reader
    return FuzzResult(proc.returncode or 0, b"".join(chunks).decode(errors="replace"))


async def assert_fuzz_clean(base_url: str, **kwargs: object) -> FuzzResult:
    """Fuzz and fail the test with schemathesis' own report (the failing requests as curl commands) on any finding."""
    result = await fuzz_openapi(base_url, **kwargs)  # type: ignore[arg-type]
    if not result.ok:
        raise AssertionError(f"schemathesis found problems (exit {result.returncode}):\n{result.output[-12000:]}")
    return result
