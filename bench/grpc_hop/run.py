"""The ingest → nlp hop: what our gRPC plumbing costs and what it buys, all peers in one run.

One NLP-shaped call (an `Analyze` answer for 32 feedback items with sentiment, aspects, intents and keywords) served
three ways on loopback, each by a server that does no model work, so only the hop is measured:

- ours: `cx_common.grpc.insecure_channel` (deadline + trace metadata interceptor, retry policy) to a `grpc.aio`
  server with our `ServerContextInterceptor`;
- bare gRPC: a plain `grpc.aio` channel and server, no interceptors;
- HTTP/JSON: the same answer as JSON from FastAPI on uvicorn, called with a pooled `httpx.AsyncClient`.

Sequential p50/p99 latency and throughput with concurrent callers.

    python -m bench grpc_hop [--quick] [--concurrency 16] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.responses import Response
from google.protobuf.json_format import MessageToDict, ParseDict
from grpc import aio

from bench.report import write_result
from cx.nlp.v1 import nlp_pb2, nlp_pb2_grpc
from cx_common.grpc import ServerContextInterceptor, insecure_channel
from cx_local.pytest_plugin import live_server

Call = Callable[[], Awaitable[Any]]


def answer(items: int = 32) -> nlp_pb2.AnalyzeResponse:
    response = nlp_pb2.AnalyzeResponse(model_version="bench")
    for i in range(items):
        result = response.results.add(id=f"fb-{i}", index=i, unmatched=i % 5 == 0, need_confidence=0.7)
        result.need_layer = nlp_pb2.NEED_LAYER_PAIN_POINT
        result.language.language, result.language.confidence = ("zh-Hans" if i % 2 else "en"), 0.98
        result.sentiment.label = nlp_pb2.SENTIMENT_NEGATIVE
        result.sentiment.score = 0.91
        result.sentiment.probabilities.negative = 0.91
        result.sentiment.probabilities.neutral = 0.06
        result.sentiment.probabilities.positive = 0.03
        for k in range(2):
            hit = result.aspects.add(
                path=["服务", "门店服务", "排队时间"], node_id="n-queue", opinion="排队太久了", matched_by="keyword"
            )
            hit.span.start, hit.span.end = k * 10, k * 10 + 5
            hit.polarity, hit.confidence = nlp_pb2.SENTIMENT_NEGATIVE, 0.88
        result.intents.add(intent="complaint", score=0.8)
        for word in ("排队", "收银", "slow", "queue"):
            result.keywords.add(text=word, weight=0.5)
    return response


def request(items: int = 32) -> nlp_pb2.AnalyzeRequest:
    return nlp_pb2.AnalyzeRequest(
        items=[nlp_pb2.TextInput(id=f"fb-{i}", text="门店排队太久，收银员态度一般。" * 3) for i in range(items)]
    )


class Servicer(nlp_pb2_grpc.NlpServiceServicer):
    def __init__(self, reply: nlp_pb2.AnalyzeResponse) -> None:
        self.reply = reply

    async def Analyze(self, request: nlp_pb2.AnalyzeRequest, context: aio.ServicerContext) -> nlp_pb2.AnalyzeResponse:  # noqa: N802
        return self.reply


async def grpc_server(reply: nlp_pb2.AnalyzeResponse, *, ours: bool) -> tuple[aio.Server, str]:
    server = aio.server(interceptors=[ServerContextInterceptor()] if ours else [])
    nlp_pb2_grpc.add_NlpServiceServicer_to_server(Servicer(reply), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


def http_app(reply: nlp_pb2.AnalyzeResponse) -> FastAPI:
    app = FastAPI()
    body = MessageToDict(reply)

    @app.post("/analyze")
    async def analyze(payload: dict[str, Any]) -> Response:
        ParseDict(payload, nlp_pb2.AnalyzeRequest())  # the service would read the request…
        return Response(_dumps(body), media_type="application/json")

    return app


def _dumps(body: dict[str, Any]) -> bytes:
    import json

    return json.dumps(body, ensure_ascii=False).encode()


async def latency(call: Call, n: int) -> tuple[float, float]:
    for _ in range(min(50, n)):
        await call()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


async def throughput(call: Call, concurrency: int, seconds: float) -> float:
    done = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await call()
            done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - t0)


async def run(args: argparse.Namespace) -> int:
    reply, req = answer(), request()
    ours_server, ours_target = await grpc_server(reply, ours=True)
    bare_server, bare_target = await grpc_server(reply, ours=False)
    async with live_server(http_app(reply)) as base_url:  # type: ignore[attr-defined]
        figures = await measure(args, req, ours_target, bare_target, base_url)
    await ours_server.stop(None)
    await bare_server.stop(None)
    report(args, figures)
    return 0


async def measure(
    args: argparse.Namespace, req: nlp_pb2.AnalyzeRequest, ours_target: str, bare_target: str, base_url: str
) -> dict[str, tuple[float, float, float]]:
    req_json = MessageToDict(req)
    ours_channel = insecure_channel(ours_target)
    bare_channel = aio.insecure_channel(bare_target)
    ours_stub = nlp_pb2_grpc.NlpServiceStub(ours_channel)
    bare_stub = nlp_pb2_grpc.NlpServiceStub(bare_channel)
    http = httpx.AsyncClient(base_url=base_url, limits=httpx.Limits(max_connections=64))

    async def call_http() -> Any:
        r = await http.post("/analyze", json=req_json)
        r.raise_for_status()
        return ParseDict(r.json(), nlp_pb2.AnalyzeResponse())

    calls: dict[str, Call] = {
        "ours: cx_common gRPC channel + interceptors": lambda: ours_stub.Analyze(req),
        "bare grpc.aio, no interceptors": lambda: bare_stub.Analyze(req, timeout=10),
        "HTTP/JSON (FastAPI + httpx, pooled)": call_http,
    }
    n = 300 if args.quick else 2000
    seconds = 2.0 if args.quick else args.seconds
    figures: dict[str, tuple[float, float, float]] = {}
    try:
        for name, call in calls.items():
            p50, p99 = await latency(call, n)
            rps = await throughput(call, args.concurrency, seconds)
            figures[name] = (p50, p99, rps)
    finally:
        await http.aclose()
        await ours_channel.close()
        await bare_channel.close()
    return figures


def report(args: argparse.Namespace, figures: dict[str, tuple[float, float, float]]) -> None:
    ours_name, bare_name, http_name = list(figures)
    ours, bare, web_fig = figures[ours_name], figures[bare_name], figures[http_name]
    print(f"{'system':46} {'p50 ms':>8} {'p99 ms':>8} {'calls/s':>9}")
    for name, (p50, p99, rps) in figures.items():
        print(f"{name:46} {p50:8.3f} {p99:8.3f} {rps:9.0f}")
    overhead = ours[0] - bare[0]
    rows = [
        {
            "metric": "p50 latency overhead vs bare grpc.aio (ms)",
            "ours": round(ours[0], 3),
            "peer": "bare grpc.aio",
            "peer_value": round(bare[0], 3),
            "ratio": round(overhead, 3),
            "target": "≤ 0.2 ms added",
            "met": overhead <= 0.2,
        },
        {
            "metric": f"calls/s, {args.concurrency} callers, 32-item Analyze answer",
            "ours": round(ours[2]),
            "peer": "HTTP/JSON",
            "peer_value": round(web_fig[2]),
            "ratio": round(ours[2] / web_fig[2], 2),
            "target": "≥ 1.0×",
            "met": ours[2] >= web_fig[2],
        },
        {
            "metric": "p50 latency (ms), sequential",
            "ours": round(ours[0], 3),
            "peer": "HTTP/JSON",
            "peer_value": round(web_fig[0], 3),
            "ratio": round(web_fig[0] / ours[0], 2),
            "target": "≥ 1.0× (HTTP ÷ ours)",
            "met": ours[0] <= web_fig[0],
        },
    ]
    print(f"our channel adds {overhead:+.3f} ms p50 over bare grpc.aio; {ours[2] / web_fig[2]:.2f}× HTTP/JSON calls/s")
    write_result(
        "grpc_hop",
        "ingest → nlp hop: our gRPC channel vs bare grpc.aio vs HTTP/JSON (loopback, no model work)",
        rows,
        quick=args.quick,
        notes=[
            f"{name}: p50 {p50:.3f} ms, p99 {p99:.3f} ms, {rps:.0f} calls/s"
            for name, (p50, p99, rps) in figures.items()
        ],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench grpc_hop", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each throughput run")
    args, _ = parser.parse_known_args(argv)
    return asyncio.run(run(args))
