"""One load generator for every peer: N keep-alive HTTP/1.1 connections, each sending the next request as soon as the
previous answer is read (closed loop), with raw asyncio streams so the generator itself stays cheap."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.harness import read_response


@dataclass
class Run:
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    warmup_ok: int = 0  # expected answers during the warm-up (not measured, but stored like the others)

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(len(data) * q))] if data else float("nan")


async def _connection(
    host: str, port: int, path: str, body: Callable[[], bytes], expect: int, until: float, record: bool, run: Run
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        "Accept-Language: zh-CN,zh;q=0.9\r\nContent-Length: "
    ).encode()
    try:
        while time.perf_counter() < until:
            payload = body()
            t0 = time.perf_counter()
            writer.write(head + str(len(payload)).encode() + b"\r\n\r\n" + payload)
            status, _ = await read_response(reader)
            elapsed = (time.perf_counter() - t0) * 1000
            if not record:
                run.warmup_ok += status == expect
                continue
            if status == expect:
                run.latencies_ms.append(elapsed)
            else:
                run.errors[status] = run.errors.get(status, 0) + 1
    finally:
        writer.close()


async def load(
    host: str,
    port: int,
    path: str,
    body: Callable[[], bytes],
    *,
    connections: int,
    seconds: float,
    warmup: float = 1.0,
    expect: int = 201,
    on_measure: Callable[[], None] | None = None,
) -> Run:
    """Warm up, then measure; `on_measure` is called when the measured part starts (e.g. to start CPU meters)."""
    run = Run()
    if warmup > 0:
        until = time.perf_counter() + warmup
        await asyncio.gather(
            *(_connection(host, port, path, body, expect, until, False, run) for _ in range(connections))
        )
    if on_measure is not None:
        on_measure()
    t0 = time.perf_counter()
    until = t0 + seconds
    await asyncio.gather(*(_connection(host, port, path, body, expect, until, True, run) for _ in range(connections)))
    run.seconds = time.perf_counter() - t0
    return run
