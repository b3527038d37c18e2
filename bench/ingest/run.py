"""Ingest benchmark: partner batches of 100 records of ~1 KB (`POST /v1/feedback:batch` with `Idempotency-Key`,
natural-key dedup with updates, outbox rows) through the real ingest service, against in the same run
(a) FastAPI + SQLAlchemy ORM `add_all`, (b) FastAPI + asyncpg `executemany`, (c) a staged-COPY handler (COPY into a
temp table, `INSERT … ON CONFLICT`, outbox rows, one transaction per request) and (d) raw asyncpg COPY without HTTP
(the ceiling); plus the analysis pipeline (real worker → real NLP gRPC server, tiny model) against the NLP
service's own ceiling (the same texts in batched Analyze calls). See bench/ingest/peers.py for what each peer does.

    python -m bench ingest [--quick] [--connections 4] [--seconds 8] [--rounds 3] [--skip-pipeline] [--write-readme]

Each HTTP system is served by uvicorn (one worker) in its own process on a real socket, on the same Postgres
database and tables, driven by the same closed-loop load generator with the same request bodies. Postgres:
CX_DATABASE_URL (a superuser URL; a throwaway database is created in it) or an embedded server (fsync off).
Targets: ours ≥ 1.1× (c), ≥ 1.8× (b), ≥ 5× (a), ≥ 20 % of (d), p99 ≤ 50 ms; an idempotent replay creates no row and
answers the identical body (checked for every HTTP system); pipeline ≥ 0.9× the NLP ceiling. A full run (or
--write-readme) puts the table into services/ingest/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.ingest.ceiling import run_ceiling
from bench.ingest.infra import Pg, cpu_seconds, postgres, serve, tree_cpu_seconds, with_database
from bench.ingest.loadgen import Run, load
from bench.ingest.peers import Caller
from bench.ingest.workload import RECORDS, REPEATS, UPDATES, Connection, body, prefill, record_size
from bench.report import write_readme_block, write_result

ROOT = Path(__file__).resolve().parents[2]
SERVICE_DIR = ROOT / "services" / "ingest"
README = SERVICE_DIR / "README.md"
ROLE_PASSWORD = "bench-ingest"  # noqa: S105 - a throwaway database
HTTP_PEERS = {
    "ours": ("ours: ingest service (cx-ingest, FastAPI)", "cx_ingest.main:create_app", "/v1/feedback:batch"),
    "orm": ("(a) FastAPI + SQLAlchemy ORM add_all", "bench.ingest.peers:orm_app", "/feedback:batch"),
    "executemany": ("(b) FastAPI + asyncpg executemany", "bench.ingest.peers:executemany_app", "/feedback:batch"),
    "staged_copy": ("(c) FastAPI + staged COPY", "bench.ingest.peers:staged_copy_app", "/feedback:batch"),
    "staged_copy_reused": (
        "(c′) staged COPY, temp table kept per connection",
        "bench.ingest.peers:staged_copy_reused_app",
        "/feedback:batch",
    ),
}
CEILING = ("(d) raw asyncpg COPY, no HTTP (ceiling)",)
TARGETS = {"staged_copy": 1.1, "executemany": 1.8, "orm": 5.0, "ceiling": 0.2}
P99_TARGET_MS = 50.0
TABLES = "ingest.feedback_items, ingest.outbox, ingest.idempotency_keys, ingest.import_errors, ingest.imports"


async def prepare(admin_url: str) -> tuple[str, str, Caller, str]:
    """Database + ingest role (+ TEMP for the staged-COPY peer) + migrated schema + a partner and its API key,
    registered through the service's own API."""
    from cx_common.migrations import upgrade
    from cx_ingest.main import create_app
    from cx_ingest.settings import Settings
    from cx_local.provision import create_database, provision_schema, role_name
    from cx_local.pytest_plugin import TokenMinter, app_client

    name = f"bench_ingest_{secrets.token_hex(3)}"
    await create_database(admin_url, name)
    await provision_schema(admin_url, name, "ingest", ROLE_PASSWORD)
    conn = await asyncpg.connect(with_database(admin_url, name))
    try:
        await conn.execute(f'GRANT TEMPORARY ON DATABASE "{name}" TO {role_name("ingest")}')
        # Every system plans with its parameter values. Each run starts from freshly truncated and analysed (empty)
        # tables, and a generic plan made with those statistics looks natural keys up through the tenant index,
        # reading every row of the tenant: that cost the peers up to 2x their Postgres CPU. Our service sets the
        # same on its own pool (cx_ingest.pg); here it is set for all alike, so no system gains from it.
        await conn.execute(f'ALTER DATABASE "{name}" SET plan_cache_mode = force_custom_plan')
    finally:
        await conn.close()
    role_url = with_database(admin_url, name, role_name("ingest"), ROLE_PASSWORD)
    await asyncio.to_thread(upgrade, SERVICE_DIR, role_url)
    tokens = TokenMinter()
    app = create_app(Settings(database_url=role_url, nats_url=None, nlp_grpc_target=None, log_level="WARNING"))
    tenant = uuid.uuid4()
    auth = {"Authorization": f"Bearer {tokens.mint(tenant, scopes=('partners:*',))}"}
    async with app_client(app, tokens) as client:  # type: ignore[attr-defined]
        partner = await client.post(
            "/v1/partners",
            json={"title": "bench CRM", "rate_limit_per_minute": 1_000_000, "rate_limit_burst": 1_000_000},
            headers=auth,
        )
        partner.raise_for_status()
        partner_id = partner.json()["id"]
        issued = await client.post(f"/v1/partners/{partner_id}/keys", json={"name": "bench"}, headers=auth)
        issued.raise_for_status()
    return name, role_url, Caller(tenant_id=tenant, partner_id=uuid.UUID(partner_id)), issued.json()["key"]


def server_env(role_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CX_")}
    env.update(
        {
            "BENCH_INGEST_DATABASE_URL": role_url,
            "CX_INGEST_DATABASE_URL": role_url,
            "CX_INGEST_LOG_LEVEL": "WARNING",
            "CX_INGEST_LOG_JSON": "true",
            "CX_INGEST_CLUSTERING_INTERVAL_S": "0",
            "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
        }
    )
    return env


async def reset(admin_db_url: str) -> None:
    conn = await asyncpg.connect(admin_db_url)
    try:  # every system starts from the same (empty) tables
        await conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY")
        await conn.execute("VACUUM ANALYZE ingest.feedback_items")
        await conn.execute("VACUUM ANALYZE ingest.outbox")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def counts(admin_db_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(admin_db_url)
    try:
        return {
            table: int(await conn.fetchval(f"SELECT count(*) FROM ingest.{table}"))
            for table in ("feedback_items", "outbox", "idempotency_keys", "imports")
        }
    finally:
        await conn.close()


def expected(sources: list[Connection]) -> tuple[int, int]:
    """(feedback rows, feedback.received outbox rows) after the requests these connections sent."""
    rows = sum(RECORDS + (s.sent - 1) * (RECORDS - REPEATS - UPDATES) for s in sources if s.sent)
    events = sum(RECORDS + (s.sent - 1) * (RECORDS - REPEATS) for s in sources if s.sent)
    return rows, events


async def check_replay(port: int, path: str, api_key: str, admin_db_url: str, peer: str) -> dict[str, Any]:
    """Send one new batch, then the same key + body again, then the same key with another body."""
    key = f"replay-{peer}-{secrets.token_hex(4)}"
    payload = body(10_000 + len(peer), 0)
    headers = {"X-Api-Key": api_key, "Idempotency-Key": key, "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        first = await client.post(path, content=payload, headers=headers)
        before = await counts(admin_db_url)
        again = await client.post(path, content=payload, headers=headers)
        after = await counts(admin_db_url)
        other = await client.post(path, content=body(10_000 + len(peer), 1), headers=headers)
    created = {t: after[t] - before[t] for t in after}
    ok = (
        first.status_code == 200
        and again.status_code == 200
        and again.content == first.content
        and not any(created.values())
        and other.status_code == 422
    )
    return {"ok": ok, "first": first.status_code, "replay": again.status_code, "other": other.status_code,
            "identical": again.content == first.content, "rows_created": sum(created.values())}  # fmt: skip


async def measure(
    args: argparse.Namespace, pg: Pg, admin_db_url: str, role_url: str, caller: Caller, api_key: str
) -> Any:
    env = server_env(role_url)
    runs: dict[str, list[Run]] = {k: [] for k in [*HTTP_PEERS, "ceiling"]}
    checks: dict[str, list[str]] = {k: [] for k in runs}
    replays: dict[str, dict[str, Any]] = {}
    latency: dict[str, Run] = {}
    ports: dict[str, int] = {}
    pids: dict[str, int] = {"ceiling": os.getpid()}
    servers = [serve(target, env) for _, target, _ in HTTP_PEERS.values()]
    try:
        for key, server in zip(HTTP_PEERS, servers, strict=True):
            started = server.__enter__()
            ports[key], pids[key] = started.port, started.pid
        systems = [*HTTP_PEERS, "ceiling"]
        for round_no in range(args.rounds):
            # Short rounds, the order rotated each round: other load on the machine comes and goes, and every
            # system should meet it alike.
            shift = round_no % len(systems)
            for key in systems[shift:] + systems[:shift]:
                await reset(admin_db_url)
                cpu0, pg0 = cpu_seconds(pids[key]), tree_cpu_seconds(pg.postmaster)
                if key == "ceiling":
                    run = await run_ceiling(
                        admin_db_url, caller, args.connections, seconds=args.seconds, warmup=args.warmup
                    )
                    want_rows, want_events = run.batches * RECORDS, run.batches * RECORDS
                else:
                    sources = [Connection(c, f"{key}{round_no}") for c in range(args.connections)]
                    path = HTTP_PEERS[key][2]
                    run = await load(ports[key], path, api_key, sources, seconds=args.seconds, warmup=args.warmup)
                    want_rows, want_events = expected(sources)
                requests = run.batches
                run.server_cpu_ms = (cpu_seconds(pids[key]) - cpu0) * 1000 / max(1, requests)
                pg1 = tree_cpu_seconds(pg.postmaster)
                run.pg_cpu_ms = None if pg0 is None or pg1 is None else (pg1 - pg0) * 1000 / max(1, requests)
                got = await counts(admin_db_url)
                if not run.errors and (got["feedback_items"], got["outbox"]) != (want_rows, want_events):
                    checks[key].append(f"round {round_no}: rows {got} != expected {want_rows}/{want_events}")
                if key != "ceiling" and round_no == 0:
                    replays[key] = await check_replay(ports[key], HTTP_PEERS[key][2], api_key, admin_db_url, key)
                runs[key].append(run)
                pg_ms = "" if run.pg_cpu_ms is None else f" + pg {run.pg_cpu_ms:5.2f}"
                print(
                    f"  {key:18} {run.records_per_s:8.0f} records/s  p50 {run.percentile(0.5):7.2f} ms  "
                    f"p99 {run.percentile(0.99):7.2f} ms  cpu/request {run.server_cpu_ms:5.2f}{pg_ms} ms  "
                    f"errors {run.errors or 0} {run.last_error[:200]!r}",
                    flush=True,
                )
        for key in HTTP_PEERS:  # latency of one partner sending batches back to back (no queueing at the server)
            await reset(admin_db_url)
            sources = [Connection(0, f"{key}-solo")]
            solo = await load(
                ports[key], HTTP_PEERS[key][2], api_key, sources, seconds=args.latency_seconds, warmup=0.5
            )
            latency[key] = solo
            print(f"  {key:18} 1 connection: p50 {solo.percentile(0.5):7.2f} ms  p99 {solo.percentile(0.99):7.2f} ms")
    finally:
        for server in servers:
            server.__exit__(None, None, None)
    return runs, checks, replays, latency


def pg_median(items: list[Run]) -> float | None:
    values = [r.pg_cpu_ms for r in items if r.pg_cpu_ms is not None]
    return statistics.median(values) if len(values) == len(items) else None


def summarise(runs: dict[str, list[Run]]) -> dict[str, dict[str, Any]]:
    return {
        key: {
            "rps": statistics.median(r.records_per_s for r in items),
            "p50": statistics.median(r.percentile(0.5) for r in items),
            "p99": statistics.median(r.percentile(0.99) for r in items),
            "errors": sum(sum(r.errors.values()) for r in items),
            "cpu": statistics.median(r.server_cpu_ms for r in items),
            "pg": pg_median(items),
        }
        for key, items in runs.items()
    }


def cpu_total(fig: dict[str, Any]) -> float:
    """CPU ms per request, serving process + Postgres."""
    return round(float(fig["cpu"]) + float(fig["pg"] or 0.0), 1)


def label(key: str) -> str:
    return CEILING[0] if key == "ceiling" else HTTP_PEERS[key][0]


def http_table(
    fig: dict[str, dict[str, Any]],
    replays: dict[str, dict[str, Any]],
    latency: dict[str, Run],
    args: argparse.Namespace,
) -> tuple[list[str], list[dict[str, Any]]]:
    ours = fig["ours"]
    lines = [
        f"| system | records/s | p50 / p99 ms per request ({args.connections} connections) | p50 / p99 ms (1 "
        "connection) | CPU ms / request: process + Postgres | errors | idempotent replay | ours ÷ system "
        "(records/s) | system ÷ ours (CPU per request) |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for key in fig:
        f = fig[key]
        rep = replays.get(key)
        replay = "—" if rep is None else ("identical, 0 rows" if rep["ok"] else f"**failed** {rep}")
        cpu = f"{f['cpu']:.1f}" + ("" if f["pg"] is None else f" + {f['pg']:.1f}")
        solo = latency.get(key)
        solo_ms = "—" if solo is None else f"{solo.percentile(0.5):.1f} / {solo.percentile(0.99):.1f}"
        cpu_ratio = cpu_total(f) / cpu_total(ours) if f["pg"] is not None and ours["pg"] is not None else None
        lines.append(
            f"| {label(key)} | {f['rps']:,.0f} | {f['p50']:.1f} / {f['p99']:.1f} | {solo_ms} | {cpu} | "
            f"{f['errors']:.0f} | {replay} | {ours['rps'] / f['rps']:.2f}× | "
            + ("—" if cpu_ratio is None else f"{cpu_ratio:.2f}×")
            + " |"
        )
    rows: list[dict[str, Any]] = []
    verdicts = []
    for key, target in TARGETS.items():
        ratio = ours["rps"] / fig[key]["rps"]
        met = ratio >= target
        shown = f"≥ {target:.0%} of" if key == "ceiling" else f"≥ {target:g}×"
        verdicts.append(f"{shown} {label(key).split(' ', 1)[0]} — **{ratio:.3f}×** ({'met' if met else 'missed'})")
        rows.append({"metric": f"records/s, batches of {RECORDS} ({args.connections} connections)",
                     "ours": round(ours["rps"]), "peer": label(key), "peer_value": round(fig[key]["rps"]),
                     "ratio": round(ratio, 2), "target": shown.replace(" of", ""), "met": met,
                     "cpu_ms_ours": cpu_total(ours), "cpu_ms_peer": cpu_total(fig[key])})  # fmt: skip
    for key in (k for k in fig if k not in TARGETS and k != "ours"):
        ratio = ours["rps"] / fig[key]["rps"]
        rows.append({"metric": f"records/s, batches of {RECORDS} ({args.connections} connections)",
                     "ours": round(ours["rps"]), "peer": label(key), "peer_value": round(fig[key]["rps"]),
                     "ratio": round(ratio, 2), "target": "", "met": None,
                     "cpu_ms_ours": cpu_total(ours), "cpu_ms_peer": cpu_total(fig[key])})  # fmt: skip
    p99_met = ours["p99"] <= P99_TARGET_MS
    verdicts.append(
        f"p99 ≤ {P99_TARGET_MS:g} ms — **{ours['p99']:.1f} ms** at {args.connections} connections "
        f"({'met' if p99_met else 'missed'})"
    )
    rows.append({"metric": f"p99 ms per request of 100 records ({args.connections} connections)",
                 "ours": round(ours["p99"], 1), "peer": "", "peer_value": None, "ratio": None,
                 "target": f"≤ {P99_TARGET_MS:g} ms", "met": p99_met})  # fmt: skip
    if "ours" in latency:
        solo_p99 = latency["ours"].percentile(0.99)
        verdicts.append(f"**{solo_p99:.1f} ms** at 1 connection ({'met' if solo_p99 <= P99_TARGET_MS else 'missed'})")
        rows.append({"metric": "p99 ms per request of 100 records (1 connection)", "ours": round(solo_p99, 1),
                     "peer": "", "peer_value": None, "ratio": None, "target": f"≤ {P99_TARGET_MS:g} ms",
                     "met": solo_p99 <= P99_TARGET_MS})  # fmt: skip
    replay_ok = bool(replays.get("ours", {}).get("ok"))
    verdicts.append(f"idempotent replay: 0 rows, identical body, other body → 422 — {'met' if replay_ok else 'missed'}")
    shown_replay = "0 / yes" if replay_ok else str(replays.get("ours"))
    rows.append({"metric": "idempotent replay: rows created / identical body", "ours": shown_replay, "peer": "",
                 "peer_value": None, "ratio": None, "target": "0 / yes", "met": replay_ok})  # fmt: skip
    lines += ["", "Targets: " + "; ".join(verdicts) + "."]
    return lines, rows


def write_readme(text: str, machine: str) -> None:
    body = f"{text}\n\nMachine: {machine}. Reproduce with `python -m bench ingest`."
    write_readme_block(README, "ingest", body, heading="Benchmarks")


async def run(args: argparse.Namespace) -> int:
    from bench.report import machine

    # Bodies for every connection, generated before any system is timed (each round replays the same ones).
    load_at_start = os.getloadavg()[0]
    per_connection = int((args.seconds + args.warmup) * args.max_rate / RECORDS / args.connections) + 10
    prefill(args.connections, per_connection)
    with postgres() as pg:
        from cx_local.provision import drop_database

        runs: dict[str, list[Run]] = {}
        checks: dict[str, list[str]] = {}
        replays: dict[str, dict[str, Any]] = {}
        latency: dict[str, Run] = {}
        if not args.skip_http:
            name, role_url, caller, api_key = await prepare(pg.url)
            admin_db_url = with_database(pg.url, name)
            try:
                runs, checks, replays, latency = await measure(args, pg, admin_db_url, role_url, caller, api_key)
            finally:
                await drop_database(pg.url, name)
        pipeline: dict[str, Any] | None = None
        if not args.skip_pipeline:
            from bench.ingest.pipeline import run_pipeline

            pipeline = await run_pipeline(args, pg)
    lines: list[str] = []
    rows: list[dict[str, Any]] = []
    if runs:
        lines, rows = http_table(summarise(runs), replays, latency, args)
    notes = [
        f"Batches of {RECORDS} records of ~{record_size():,.0f} bytes of JSON each (Chinese and English feedback, some "
        f"with a phone number or e-mail): per request {RECORDS - REPEATS - UPDATES} new records, {REPEATS} repeats "
        f"(duplicates) and {UPDATES} changed versions (updates) of records of the connection's previous request; a "
        "fresh Idempotency-Key per request. Every system writes the same feedback_items and outbox rows into the "
        "same tables (row counts checked after every run); see bench/ingest/peers.py for each peer.",
        "Ours also redacts PII in every text, applies partner field mappings, writes an `imports` row with the "
        "per-record results, runs its middleware (metrics, request ids, body limit, text guard) and the per-partner "
        "rate limiter (set high enough never to bind); no NATS, so the outbox relay is idle for every system alike.",
        f"{args.connections} keep-alive connections, {args.rounds} round(s) of {args.seconds:g} s per system, "
        "the order rotated each round (medians), one uvicorn worker each, the load generator in the bench process; "
        "then each HTTP system alone "
        f"with 1 connection for {args.latency_seconds:g} s (latency without queueing). Postgres with fsync off "
        "unless CX_DATABASE_URL points elsewhere. CPU per request = user + system time of the serving process "
        "(for the ceiling: the bench process) and of all Postgres processes during the run, over the requests "
        "sent (warm-up included): unlike throughput it hardly moves with other load on the machine. "
        "The database has plan_cache_mode = force_custom_plan for every system (with statistics of the freshly "
        "emptied tables, generic plans of the natural-key lookups read every row of the tenant). "
        f"Load average when the run started: {load_at_start:.1f} on {os.cpu_count()} cores.",
    ]
    for key, problems in checks.items():
        notes += [f"row-count check failed for {label(key)}: {p}" for p in problems]
    if pipeline is not None:
        lines += ["", *pipeline["lines"]]
        rows += pipeline["rows"]
        notes += pipeline["notes"]
    text = "\n".join(lines)
    print(text)
    write_result("ingest", "Partner batch ingest and the analysis pipeline", rows, notes=notes, quick=args.quick)
    if args.write_readme or not args.quick:
        write_readme(text + "\n\n" + "\n".join(f"- {n}" for n in notes), machine())
    ok = all(r["met"] is not False for r in rows) and not any(checks.values())
    return 0 if ok or args.quick else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="≤ 2 min smoke run")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.5)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--latency-seconds", type=float, default=5.0, help="the 1-connection latency run")
    parser.add_argument(
        "--max-rate",
        type=float,
        default=20_000,
        help="records/s the fastest HTTP system may reach (bodies pre-generated)",
    )
    parser.add_argument("--skip-pipeline", action="store_true", help="only the HTTP ingest part")
    parser.add_argument("--skip-http", action="store_true", help="only the analysis pipeline")
    parser.add_argument("--pipeline-items", type=int, default=1500)
    parser.add_argument("--pipeline-rounds", type=int, default=None, help="default 2 (1 with --quick)")
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args(argv or [])
    if args.quick:
        args.seconds, args.warmup, args.rounds = min(args.seconds, 3.0), min(args.warmup, 1.5), 1
        args.latency_seconds = min(args.latency_seconds, 2.0)
        args.pipeline_items = min(args.pipeline_items, 640)
    if args.pipeline_rounds is None:
        args.pipeline_rounds = 1 if args.quick else 2
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
