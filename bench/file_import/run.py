"""File import benchmark: a CSV of feedback (1,000,000 rows by default, some of them bad) uploaded to the real ingest
service (`POST /v1/feedback:import`) and streamed into feedback_items in the background, against, in the same run,
(a) the naive import (the whole file read into a list, pydantic validation, SQLAlchemy ORM `add_all` with outbox
rows, a commit every 500 rows; `bench/file_import/naive.py`, in its own process) and (b) raw asyncpg COPY of the
same file into a table of text columns (no validation, redaction, dedup, outbox or progress: what the database
absorbs at most through one client).

    python -m bench file_import [--rows 1000000] [--quick] [--write-readme]

Measures rows/s from the first byte of the upload to the import's `completed` status, the service process's peak
memory during the import against the file's size (the issue asks for >= 1 million rows without loading the file
into memory), and checks the outcome: every good row accepted, every bad row rejected and listed in errors.csv.
A full run (or --write-readme) writes the table into services/ingest/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.file_import.naive import peak_rss_mb
from bench.harness import ROOT, postgres, serve, with_database
from bench.ingest.peers import Caller
from bench.ingest.run import counts, prepare, reset, server_env
from bench.ingest.workload import _EN, _ZH
from bench.report import machine, write_readme_block, write_result

README = ROOT / "services" / "ingest" / "README.md"
HEADER = ("external_id", "channel", "touchpoint_id", "customer_key", "product_sku", "occurred_at", "text")
BAD_EVERY = 997  # every 997th row has no text: rejected with its row number in errors.csv
MEMORY_SHARE_TARGET = 0.1  # peak memory growth below a tenth of the file (or MEMORY_FLOOR_MB): streamed, not loaded
MEMORY_FLOOR_MB = 32.0  # what a chunk of rows and its statements may take, whatever the file


def write_csv(path: Path, rows: int, seed: int = 11) -> int:
    """A CSV of `rows` feedback rows (Chinese and English, some with a phone number); returns the bad rows."""
    rng = random.Random(seed)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    bad = 0
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        for n in range(rows):
            zh = n % 2 == 0
            parts = [rng.choice(_ZH if zh else _EN) for _ in range(rng.randint(1, 3))]
            if n % 7 == 0:
                parts.append(f" 电话 138{n % 100_000_000:08d}" if zh else f" call me on +1 415 555 {n % 10_000:04d}")
            text = "".join(parts).strip()
            if n % BAD_EVERY == BAD_EVERY - 1:
                text, bad = "", bad + 1
            occurred = start + dt.timedelta(seconds=n * 7)
            writer.writerow(
                (f"row-{n}", "store", "tp-checkout", f"c-{n % 50_000}", f"sku-{n % 300}", occurred.isoformat(), text)
            )
    return bad


async def run_ours(port: int, api_key: str, path: Path, timeout_s: float) -> dict[str, Any]:
    headers = {"X-Api-Key": api_key}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
        started = time.perf_counter()
        with path.open("rb") as handle:
            answer = await client.post(
                "/v1/feedback:import", files={"file": ("feedback.csv", handle, "text/csv")}, headers=headers
            )
        answer.raise_for_status()
        uploaded = time.perf_counter() - started
        import_id = answer.json()["import_id"]
        status: dict[str, Any] = {}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = (await client.get(f"/v1/imports/{import_id}", headers=headers)).json()
            if status["status"] != "running":
                break
            await asyncio.sleep(0.5)
        elapsed = time.perf_counter() - started
        errors = await client.get(f"/v1/imports/{import_id}/errors.csv", headers=headers)
    error_lines = max(0, len(errors.text.splitlines()) - 1)  # less the header
    return {"elapsed": elapsed, "uploaded": uploaded, "status": status, "error_lines": error_lines}


async def run_ceiling(admin_db_url: str, path: Path) -> float:
    conn = await asyncpg.connect(admin_db_url)
    try:
        columns = ", ".join(f"{c} text" for c in HEADER)
        await conn.execute(f"CREATE UNLOGGED TABLE IF NOT EXISTS public.import_ceiling ({columns})")
        await conn.execute("TRUNCATE public.import_ceiling")
        started = time.perf_counter()
        await conn.copy_to_table(
            "import_ceiling", schema_name="public", source=path, format="csv", header=True, columns=list(HEADER)
        )
        return time.perf_counter() - started
    finally:
        await conn.close()


def run_naive(role_url: str, path: Path, caller: Caller) -> dict[str, Any]:
    """The naive import in a process of its own (its peak memory is then its own)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "bench.file_import.naive", role_url, str(path)]
    done = subprocess.run(
        [*cmd, str(caller.tenant_id), str(caller.partner_id)], env=env, cwd=ROOT, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"naive import failed: {done.stderr.strip().splitlines()[-1:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


async def measure(rows: int, workdir: Path) -> dict[str, Any]:
    path = workdir / "feedback.csv"
    bad = write_csv(path, rows)
    size_mb = path.stat().st_size / 1024 / 1024
    print(f"  CSV: {rows:,} rows ({bad:,} bad), {size_mb:,.0f} MB", flush=True)
    with postgres() as pg:
        name, role_url, caller, api_key = await prepare(pg.url)
        admin_db_url = with_database(pg.url, name)
        env = {**server_env(role_url), "CX_INGEST_IMPORT_DIR": str(workdir / "imports")}
        ceiling_s = await run_ceiling(admin_db_url, path)
        print(f"  ceiling: raw COPY {rows / ceiling_s:,.0f} rows/s ({ceiling_s:.1f} s)", flush=True)
        naive = await asyncio.to_thread(run_naive, role_url, path, caller)
        naive["stored"] = (await counts(admin_db_url))["feedback_items"]
        await reset(admin_db_url)  # ours starts from the same empty tables
        print(
            f"  naive: {rows / naive['seconds']:,.0f} rows/s ({naive['seconds']:.1f} s), accepted {naive['accepted']}, "
            f"rejected {naive['rejected']}, stored {naive['stored']}, peak memory {naive['before_mb']:.0f} -> "
            f"{naive['peak_mb']:.0f} MB",
            flush=True,
        )
        with serve("cx_ingest.main:create_app", env) as server:
            before_mb = peak_rss_mb(server.pid)
            ours = await run_ours(server.port, api_key, path, timeout_s=max(600.0, rows / 500))
            peak_mb = peak_rss_mb(server.pid)
        stored = (await counts(admin_db_url))["feedback_items"]
    status = ours["status"]
    print(
        f"  ours: {rows / ours['elapsed']:,.0f} rows/s ({ours['elapsed']:.1f} s, upload {ours['uploaded']:.1f} s), "
        f"status {status.get('status')}, accepted {status.get('counts', {}).get('accepted')}, rejected "
        f"{status.get('counts', {}).get('rejected')}, errors.csv lines {ours['error_lines']}, stored {stored}, "
        f"peak memory {before_mb:.0f} -> {peak_mb:.0f} MB",
        flush=True,
    )
    return {"rows": rows, "bad": bad, "size_mb": size_mb, "ceiling_s": ceiling_s, "before_mb": before_mb,
            "peak_mb": peak_mb, "stored": stored, "naive": naive, **ours}  # fmt: skip


def report(fig: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    rows, bad, status = fig["rows"], fig["bad"], fig["status"]
    counts = status.get("counts", {})
    naive = fig["naive"]
    ours_rate, ceiling_rate, naive_rate = rows / fig["elapsed"], rows / fig["ceiling_s"], rows / naive["seconds"]
    growth = max(0.0, fig["peak_mb"] - fig["before_mb"])
    naive_growth = max(0.0, naive["peak_mb"] - naive["before_mb"])
    outcome_ok = (
        status.get("status") == "completed"
        and counts.get("accepted") == rows - bad
        and counts.get("rejected") == bad
        and fig["error_lines"] == bad
        and fig["stored"] == rows - bad
    )
    memory_cap = max(MEMORY_SHARE_TARGET * fig["size_mb"], MEMORY_FLOOR_MB)
    memory_ok = growth < memory_cap
    lines = [
        "| system | rows/s | time | peak memory of the process | outcome |",
        "|---|---:|---:|---:|---|",
        f"| ours: `POST /v1/feedback:import`, streamed in chunks of 500 rows (validation, PII redaction, natural-key "
        f"upsert, outbox, progress) | {ours_rate:,.0f} | {fig['elapsed']:.0f} s (upload {fig['uploaded']:.1f} s) | "
        f"{fig['before_mb']:.0f} → {fig['peak_mb']:.0f} MB (+{growth:.0f} MB for a {fig['size_mb']:,.0f} MB file) | "
        f"{counts.get('accepted', 0):,} accepted, {counts.get('rejected', 0):,} rejected, {fig['error_lines']:,} "
        f"lines in errors.csv, {fig['stored']:,} rows stored |",
        f"| (a) naive: whole file into a list, pydantic, SQLAlchemy ORM `add_all` + outbox, commit per 500 rows | "
        f"{naive_rate:,.0f} | {naive['seconds']:.0f} s | {naive['before_mb']:.0f} → {naive['peak_mb']:,.0f} MB "
        f"(+{naive_growth:,.0f} MB) | {naive['accepted']:,} accepted, {naive['rejected']:,} rejected (no error "
        f"report, no progress, no resume), {naive['stored']:,} rows stored |",
        f"| (b) raw asyncpg COPY of the same file into text columns (ceiling) | {ceiling_rate:,.0f} | "
        f"{fig['ceiling_s']:.0f} s | — | {rows:,} rows copied, nothing checked |",
        "",
        f"Ours ÷ (a): **{ours_rate / naive_rate:.2f}×** the rows/s with {naive_growth / max(growth, 1.0):,.0f}× less "
        f"memory growth; ours ÷ (b): **{ours_rate / ceiling_rate:.3f}×**. Memory: +{growth:.0f} MB for a "
        f"{fig['size_mb']:,.0f} MB file (target < {memory_cap:,.0f} MB, a tenth of the file or "
        f"{MEMORY_FLOOR_MB:.0f} MB: {'met' if memory_ok else 'missed'}). Outcome: every "
        f"good row accepted and stored, each bad row (every {BAD_EVERY}th, no text) rejected and listed in "
        f"errors.csv: {'met' if outcome_ok else 'missed'}.",
    ]
    result_rows = [
        {"metric": f"rows/s, CSV import of {rows:,} rows", "ours": round(ours_rate), "peer": "(a) naive ORM import",
         "peer_value": round(naive_rate), "ratio": round(ours_rate / naive_rate, 2), "target": "", "met": None},
        {"metric": f"peak memory growth, MB, CSV import of {rows:,} rows", "ours": round(growth),
         "peer": "(a) naive ORM import", "peer_value": round(naive_growth), "ratio": None, "target": "", "met": None},
        {"metric": f"rows/s, CSV import of {rows:,} rows", "ours": round(ours_rate), "peer": "(b) raw asyncpg COPY",
         "peer_value": round(ceiling_rate), "ratio": round(ours_rate / ceiling_rate, 3), "target": "", "met": None},
        {"metric": f"peak memory growth, MB ({fig['size_mb']:,.0f} MB file)", "ours": round(growth),
         "peer": "", "peer_value": None, "ratio": None,
         "target": f"< {memory_cap:,.0f} MB", "met": memory_ok},
        {"metric": "good rows accepted, bad rows rejected and in errors.csv",
         "ours": f"{counts.get('accepted', 0)} / {counts.get('rejected', 0)} / {fig['error_lines']}",
         "peer": "", "peer_value": None, "ratio": None, "target": f"{rows - bad} / {bad} / {bad}",
         "met": outcome_ok},
    ]  # fmt: skip
    return lines, result_rows


def write_readme(text: str) -> None:
    body = f"{text}\n\nMachine: {machine()}. Reproduce with `python -m bench file_import`."
    write_readme_block(README, "file_import", body, heading="File imports")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench file_import", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="20,000 rows")
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args(argv)
    rows = 20_000 if args.quick else args.rows
    with tempfile.TemporaryDirectory(prefix="cx-bench-import-") as workdir:
        fig = asyncio.run(measure(rows, Path(workdir)))
    lines, result_rows = report(fig)
    text = "\n".join(lines)
    print(text)
    notes = [
        f"One CSV of {rows:,} rows ({fig['size_mb']:,.0f} MB; Chinese and English feedback, every 7th with a phone "
        f"number for the redactor, every {BAD_EVERY}th without text), uploaded once with httpx to one uvicorn "
        "worker; the time runs from the first byte of the upload to the import's completed status (polled every "
        "0.5 s). Postgres with fsync off unless CX_DATABASE_URL points elsewhere; no NATS and no NLP, so the items "
        "stay queued for analysis. Peak memory is the service process's VmHWM before the upload and after the import."
    ]
    write_result("file_import", f"CSV import of {rows:,} rows: ours vs raw COPY", result_rows, notes=notes,
                 quick=args.quick)  # fmt: skip
    if args.write_readme or (not args.quick and rows >= 1_000_000):
        write_readme(text + "\n\n- " + notes[0])
        print(f"(written to {README.relative_to(ROOT)})")
    return 0 if all(r["met"] is not False for r in result_rows) else 1
