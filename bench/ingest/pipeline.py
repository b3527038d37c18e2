"""Analysis pipeline: items/s from queued (`feedback.received`, analysis_state pending) to analysed, through the real
ingest service process (its analysis worker: claim → NLP `Analyze` (+ `Embed`) over gRPC → store + `feedback.analyzed`
outbox rows) and a real NLP service (`cx-nlp serve --tiny`: BentoML + the gRPC adapter), against the NLP service's own
ceiling: the same texts, in batched calls of the worker's batch size, sent straight to the same server by the bench
(best of 1, 2 and 4 calls in flight).

Two comparisons: with embeddings off, the worker against batched `Analyze` alone; with embeddings on (the default),
against batched `Analyze` + `Embed` of the same batch (the work the worker asks of NLP).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.ingest.infra import ROOT, Pg, free_port, serve, with_database
from bench.ingest.workload import body
from cx.nlp.v1 import nlp_pb2, nlp_pb2_grpc

SERVICE_DIR = ROOT / "services" / "ingest"
ROLE_PASSWORD = "bench-ingest-pipeline"  # noqa: S105 - a throwaway database
BATCH = 64  # the worker's default analysis_batch_size
TARGET = 0.9
INFLIGHT = (1, 2)  # calls in flight for the ceiling (the best counts)


class NlpServer:
    """`cx-nlp serve --tiny` on free ports (HTTP child + gRPC adapter)."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="cx-bench-nlp-"))
        self.grpc_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CX_NLP_")}
        env.update(
            {
                "BENTOML_HOME": str(self.tmp / "bentoml"),
                "BENTOML_DO_NOT_TRACK": "true",
                "CX_NLP_MODEL": "tiny",
                "CX_NLP_MODEL_DIR": str(self.tmp / "no-model"),
                "CX_NLP_LOG_LEVEL": "WARNING",
            }
        )
        cmd = [str(Path(sys.executable).with_name("cx-nlp")), "serve", "--tiny", "--host", "127.0.0.1"]
        cmd += ["--http-port", str(free_port()), "--grpc-port", str(self.grpc_port)]
        self.log = (self.tmp / "nlp.log").open("w")
        self.proc = subprocess.Popen(cmd, env=env, cwd=self.tmp, stdout=self.log, stderr=subprocess.STDOUT)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    async def ready(self, within_s: float = 240) -> None:
        deadline = time.monotonic() + within_s
        async with grpc.aio.insecure_channel(self.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"cx-nlp serve exited ({self.proc.returncode}): {self.tmp / 'nlp.log'}")
                try:
                    reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.5)
        raise RuntimeError("cx-nlp serve not ready")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


async def prepare(admin_url: str, items: int) -> tuple[str, str, uuid.UUID]:
    """A database with the ingest schema, a tenant with the retail starter codebook active (one published
    version), and `items` feedback items pushed through the partner API (queued: the app's worker is off)."""
    import httpx

    from cx_common.migrations import upgrade
    from cx_ingest.main import create_app
    from cx_ingest.settings import Settings
    from cx_local.provision import create_database, provision_schema, role_name
    from cx_local.pytest_plugin import TokenMinter, app_client

    name = f"bench_pipeline_{secrets.token_hex(3)}"
    await create_database(admin_url, name)
    await provision_schema(admin_url, name, "ingest", ROLE_PASSWORD)
    role_url = with_database(admin_url, name, role_name("ingest"), ROLE_PASSWORD)
    await asyncio.to_thread(upgrade, SERVICE_DIR, role_url)
    tokens, tenant = TokenMinter(), uuid.uuid4()
    auth = {"Authorization": f"Bearer {tokens.mint(tenant)}"}
    app = create_app(Settings(database_url=role_url, nats_url=None, nlp_grpc_target=None, log_level="WARNING"))
    client: httpx.AsyncClient
    async with app_client(app, tokens) as client:  # type: ignore[attr-defined]
        cb = await client.post(
            "/v1/codebooks", json={"name": "retail", "template": "retail", "active": True}, headers=auth
        )
        cb.raise_for_status()
        (await client.post(f"/v1/codebooks/{cb.json()['id']}/versions", json={}, headers=auth)).raise_for_status()
        partner = await client.post("/v1/partners", json={"title": "bench", "rate_limit_per_minute": 1_000_000,
                                                          "rate_limit_burst": 1_000_000}, headers=auth)  # fmt: skip
        partner.raise_for_status()
        issued = await client.post(f"/v1/partners/{partner.json()['id']}/keys", json={}, headers=auth)
        key = {"X-Api-Key": issued.json()["key"], "Content-Type": "application/json"}
        for request in range((items + 99) // 100):
            sent = await client.post("/v1/feedback:batch", content=body(20_000, request), headers=key)
            sent.raise_for_status()
    return name, role_url, tenant


async def analysis_inputs(db_url: str, tenant: uuid.UUID) -> tuple[list[nlp_pb2.TextInput], Any]:
    """The texts exactly as the worker sends them, and the tenant's codebook registration request."""
    from cx_ingest.analysis.worker import analysis_text

    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch("SELECT id, title, text, language FROM ingest.feedback_items ORDER BY id")
        cb = await conn.fetchrow(
            "SELECT c.id, c.primary_language, v.version, v.nodes::text AS nodes FROM ingest.codebooks c "
            "JOIN ingest.codebook_versions v ON v.codebook_id = c.id AND v.version = c.latest_version WHERE c.active"
        )
    finally:
        await conn.close()
    import json

    texts = [
        nlp_pb2.TextInput(id=str(r["id"]), text=analysis_text(dict(r)), language_hint=r["language"] or "") for r in rows
    ]
    register = nlp_pb2.RegisterCodebookRequest(
        tenant_id=str(tenant),
        codebook_id=str(cb["id"]),
        version=cb["version"],
        primary_language=cb["primary_language"],
        nodes=[
            nlp_pb2.CodebookNode(
                id=n["id"],
                parent_id=n.get("parent_id") or "",
                level=n["level"],
                names=n["names"],
                keywords=n["keywords"],
                examples=n["examples"],
            )
            for n in json.loads(cb["nodes"])
        ],
    )
    return texts, register


async def drive(
    call: Callable[[list[nlp_pb2.TextInput]], Awaitable[Any]], texts: list[nlp_pb2.TextInput], inflight: int
) -> float:
    """Items/s sending `texts` in batches of BATCH with `inflight` calls at a time."""
    batches = [texts[i : i + BATCH] for i in range(0, len(texts), BATCH)]
    queue = list(reversed(batches))

    async def lane() -> None:
        while queue:
            await call(queue.pop())

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(inflight)))
    return len(texts) / (time.perf_counter() - started)


async def ceiling(target: str, texts: list[nlp_pb2.TextInput], register: Any, *, embed: bool) -> dict[int, float]:
    """Items/s of batched Analyze (+ Embed of the same batch, concurrently) straight to NLP, by calls in flight."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = nlp_pb2_grpc.NlpServiceStub(channel)
        await stub.RegisterCodebook(register, timeout=60)
        ref = nlp_pb2.CodebookRef(
            tenant_id=register.tenant_id, codebook_id=register.codebook_id, version=register.version
        )

        async def call(batch: list[nlp_pb2.TextInput]) -> Any:
            analyze = stub.Analyze(nlp_pb2.AnalyzeRequest(items=batch, codebook=ref), timeout=300)
            if not embed:
                return await analyze
            return await asyncio.gather(analyze, stub.Embed(nlp_pb2.EmbedRequest(items=batch), timeout=300))

        await drive(call, texts[: BATCH * 2], 2)  # warm-up
        return {inflight: await drive(call, texts, inflight) for inflight in INFLIGHT}


async def requeue(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            "UPDATE ingest.feedback_items SET analysis_state = 'pending', attempts = 0, next_attempt_at = now(), "
            "analysis = NULL, sentiment = NULL, sentiment_score = NULL, unmatched = NULL, analyzed_at = NULL, "
            "analysis_count = 0, embedding = NULL, claim_token = NULL, lease_until = NULL, last_error = NULL"
        )
        await conn.execute("TRUNCATE ingest.outbox")
        await conn.execute("VACUUM ANALYZE ingest.feedback_items")
    finally:
        await conn.close()


async def drain(db_url: str, role_url: str, nlp: str, *, embeddings: bool, items: int) -> dict[str, Any]:
    """Start the real service with the queue full; items/s from the first claim to the last item stored."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CX_")}
    env.update({"CX_INGEST_DATABASE_URL": role_url, "CX_INGEST_NLP_GRPC_TARGET": nlp, "CX_INGEST_LOG_LEVEL": "WARNING",
                "CX_INGEST_CLUSTERING_INTERVAL_S": "0", "CX_INGEST_ANALYSIS_EMBEDDINGS": str(embeddings).lower(),
                "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])})  # fmt: skip
    conn = await asyncpg.connect(db_url)
    try:
        counting = (
            "SELECT count(*) FILTER (WHERE analysis_state <> 'pending'), "
            "count(*) FILTER (WHERE analysis_state = 'done') FROM ingest.feedback_items"
        )
        started = finished = None
        with serve("cx_ingest.main:create_app", env):
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                touched, done = await conn.fetchrow(counting)
                now = time.perf_counter()
                if touched and started is None:
                    started = now
                if done >= items:
                    finished = now
                    break
                await asyncio.sleep(0.02)
        if started is None or finished is None:
            raise RuntimeError("the analysis worker did not drain the queue")
        once = await conn.fetchval("SELECT count(*) FROM ingest.feedback_items WHERE analysis_count = 1")
        events = await conn.fetchval("SELECT count(*) FROM ingest.outbox WHERE event_type = 'feedback.analyzed'")
        embedded = await conn.fetchval("SELECT count(*) FROM ingest.feedback_items WHERE embedding IS NOT NULL")
    finally:
        await conn.close()
    return {"rate": items / (finished - started), "once": once, "events": events, "embedded": embedded}


async def run_pipeline(args: argparse.Namespace, pg: Pg) -> dict[str, Any]:
    """Rounds of (ceiling, drain) per variant, interleaved so both see the same machine load; medians."""
    from cx_local.provision import drop_database

    nlp = NlpServer()
    name, role_url, tenant = await prepare(pg.url, args.pipeline_items)
    db_url = with_database(pg.url, name)
    ceilings: dict[bool, list[dict[int, float]]] = {False: [], True: []}
    drains: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    try:
        await nlp.ready()
        texts, register = await analysis_inputs(db_url, tenant)
        for _ in range(args.pipeline_rounds):
            for embeddings in (False, True):
                ceilings[embeddings].append(await ceiling(nlp.target, texts, register, embed=embeddings))
                await requeue(db_url)
                got = await drain(db_url, role_url, nlp.target, embeddings=embeddings, items=len(texts))
                drains[embeddings].append(got)
                best = max(ceilings[embeddings][-1].values())
                print(
                    f"  pipeline embeddings={embeddings}: {got['rate']:6.1f} items/s, ceiling {best:6.1f}", flush=True
                )
    finally:
        nlp.stop()
        await drop_database(pg.url, name)
    lines = [
        "| analysis pipeline | items/s | NLP ceiling, items/s | ours ÷ ceiling | analysed once / events / embeddings |",
        "|---|---:|---:|---:|---|",
    ]
    rows, notes = [], []
    for embeddings in (False, True):
        kind = "Analyze + Embed" if embeddings else "Analyze"
        label = "embeddings on (default)" if embeddings else "embeddings off"
        rate = statistics.median(d["rate"] for d in drains[embeddings])
        peak = statistics.median(max(c.values()) for c in ceilings[embeddings])
        ratio = statistics.median(
            d["rate"] / max(c.values()) for d, c in zip(drains[embeddings], ceilings[embeddings], strict=True)
        )
        last = drains[embeddings][-1]
        lines.append(
            f"| worker, {label} | {rate:,.0f} | {peak:,.0f} (batched {kind}) | **{ratio:.2f}×** | "
            f"{last['once']} / {last['events']} / {last['embedded']} of {len(texts)} |"
        )
        rows.append({"metric": f"analysis items/s, {label}", "ours": round(rate),
                     "peer": f"NLP ceiling: batched {kind}", "peer_value": round(peak),
                     "ratio": round(ratio, 2), "target": f"≥ {TARGET}×", "met": ratio >= TARGET})  # fmt: skip
    shown = "; ".join(
        f"{'Analyze + Embed' if e else 'Analyze'}: "
        + ", ".join(f"{k} in flight {statistics.median(c[k] for c in ceilings[e]):,.0f}" for k in INFLIGHT)
        for e in (False, True)
    )
    from cx_ingest.settings import Settings

    lanes = Settings(database_url=None, nats_url=None).analysis_concurrency
    notes.append(
        f"Analysis pipeline: {len(texts)} items queued (the Chinese and English records of the HTTP part, the retail "
        f"starter codebook active), drained by the real service process (default settings: batches of {BATCH}, "
        f"{lanes} lanes) with `cx-nlp serve --tiny` on the same machine; {args.pipeline_rounds} round(s), each ceiling "
        f"measured right before its drain (medians). NLP ceilings, items/s: {shown}."
    )
    return {"lines": lines, "rows": rows, "notes": notes}
