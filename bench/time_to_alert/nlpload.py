"""The nlp service's capacity for ingest-shaped work (an `Analyze` with every default task, then an `Embed`, per
batch of texts, as ingest's analysis worker sends them) and a steady background load of a given rate, in batches of
the same size, so that "half of the capacity" is half of what was measured."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from bench.time_to_alert.scenario import NEGATIVE, POSITIVE

BATCH = 16  # ingest sends up to 64 (analysis_batch_size); at a steady few per second its batches are small
TEXTS = [*NEGATIVE, *POSITIVE]


def _request(n: int, offset: int = 0) -> Any:
    from cx.nlp.v1 import nlp_pb2

    items = [nlp_pb2.TextInput(id=str(i), text=f"{TEXTS[(offset + i) % len(TEXTS)]} #{offset + i}") for i in range(n)]
    return nlp_pb2.AnalyzeRequest(items=items)


async def _work(stub: Any, request: Any) -> None:
    from cx.nlp.v1 import nlp_pb2

    await stub.Analyze(request, timeout=120)
    await stub.Embed(nlp_pb2.EmbedRequest(items=request.items), timeout=120)


async def capacity(target: str, *, seconds: float, concurrency: int = 4) -> float:
    """Texts per second with `concurrency` callers each sending the next batch as soon as the last is answered."""
    from grpc import aio

    from cx.nlp.v1 import nlp_pb2_grpc

    async with aio.insecure_channel(target) as channel:
        stub = nlp_pb2_grpc.NlpServiceStub(channel)
        await _work(stub, _request(8))  # warm-up
        done = 0
        stop_at = time.monotonic() + seconds

        async def caller(k: int) -> None:
            nonlocal done
            n = 0
            while time.monotonic() < stop_at:
                await _work(stub, _request(BATCH, offset=k * 10_000 + n))
                done += BATCH
                n += BATCH

        started = time.monotonic()
        await asyncio.gather(*(caller(k) for k in range(concurrency)))
        return done / (time.monotonic() - started)


class Background:
    """`rate` texts/s sent to nlp in batches of BATCH at a fixed pace (open loop) while the measured load runs."""

    def __init__(self, target: str, rate: float, batch: int = BATCH) -> None:
        self.target = target
        self.wanted = rate
        self.batch = batch
        self.sent = 0
        self.rate = 0.0
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._started = 0.0

    async def __aenter__(self) -> Background:
        if self.wanted > 0:
            self._task = asyncio.create_task(self._run())
        self._started = time.monotonic()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
        elapsed = time.monotonic() - self._started
        self.rate = self.sent / elapsed if elapsed > 0 else 0.0

    async def _run(self) -> None:
        from grpc import aio

        from cx.nlp.v1 import nlp_pb2_grpc

        async with aio.insecure_channel(self.target) as channel:
            stub = nlp_pb2_grpc.NlpServiceStub(channel)
            interval = self.batch / self.wanted
            inflight: set[asyncio.Task[None]] = set()
            start = time.monotonic()
            n = 0

            async def one(k: int) -> None:
                with contextlib.suppress(Exception):
                    await _work(stub, _request(self.batch, offset=k * self.batch))
                    self.sent += self.batch

            while not self._stop.is_set():
                due = start + n * interval
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=max(0.0, due - time.monotonic()))
                if self._stop.is_set():
                    break
                task = asyncio.create_task(one(n))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
                n += 1
            await asyncio.gather(*inflight)
