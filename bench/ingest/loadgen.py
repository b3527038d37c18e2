"""Closed-loop HTTP/1.1 load: N keep-alive connections, each sending its next batch as soon as the previous answer
is read, on raw asyncio streams so the generator stays cheap next to the servers it measures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.harness import read_response
from bench.ingest.workload import RECORDS, Connection


@dataclass
class Run:
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    last_error: bytes = b""
    batches: int = 0  # requests sent in all, warm-up included (row-count check, CPU per request)
    server_cpu_ms: float = 0.0  # CPU of the serving process per request (warm-up included)
    pg_cpu_ms: float | None = None  # CPU of Postgres per request, when it runs on this machine

    @property
    def requests_per_s(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    @property
    def records_per_s(self) -> float:
        return self.requests_per_s * RECORDS

    def percentile(self, q: float) -> float:
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(len(data) * q))] if data else float("nan")


async def _connection(
    port: int, path: str, api_key: str, source: Connection, until: float, record: bool, run: Run
) -> None:
    """One keep-alive connection; counts every request it sends in `run.batches`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nX-Api-Key: {api_key}\r\n"
    ).encode()
    try:
        while time.perf_counter() < until:
            key, payload = source.next()
            request = head + f"Idempotency-Key: {key}\r\nContent-Length: {len(payload)}\r\n\r\n".encode() + payload
            t0 = time.perf_counter()
            writer.write(request)
            status, answer = await read_response(reader)
            run.batches += 1
            elapsed = (time.perf_counter() - t0) * 1000
            if not record:
                continue
            if status == 200:
                run.latencies_ms.append(elapsed)
            else:
                run.errors[status] = run.errors.get(status, 0) + 1
                run.last_error = answer[:500]
    finally:
        writer.close()


async def load(
    port: int,
    path: str,
    api_key: str,
    sources: list[Connection],
    *,
    seconds: float,
    warmup: float,
) -> Run:
    run = Run()
    if warmup > 0:
        until = time.perf_counter() + warmup
        await asyncio.gather(*(_connection(port, path, api_key, s, until, False, run) for s in sources))
    t0 = time.perf_counter()
    until = t0 + seconds
    await asyncio.gather(*(_connection(port, path, api_key, s, until, True, run) for s in sources))
    run.seconds = time.perf_counter() - t0
    return run


async def closed_loop(call: Callable[[int], object], connections: int, *, seconds: float, warmup: float) -> Run:
    """The same closed loop for a peer without HTTP: `call(conn)` is awaited back to back per connection."""
    run = Run()

    async def loop(conn: int, until: float, record: bool) -> None:
        while time.perf_counter() < until:
            t0 = time.perf_counter()
            await call(conn)  # type: ignore[misc]
            if record:
                run.latencies_ms.append((time.perf_counter() - t0) * 1000)

    if warmup > 0:
        until = time.perf_counter() + warmup
        await asyncio.gather(*(loop(c, until, False) for c in range(connections)))
    t0 = time.perf_counter()
    until = t0 + seconds
    await asyncio.gather(*(loop(c, until, True) for c in range(connections)))
    run.seconds = time.perf_counter() - t0
    return run
