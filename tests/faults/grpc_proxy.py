"""A loopback gRPC proxy that sits between a client (ingest) and the real NLP server and injects faults.

Every unary call is forwarded as raw bytes (no (de)serialisation: it works for any service) to the upstream target,
metadata included. Per call the proxy records the method and whether it is a transparent retry by the client's
channel (gRPC marks those with the `grpc-previous-rpc-attempts` header), so a test can compute the retry
amplification seen by the server: attempts ÷ first attempts.

Faults are set while it runs (`set_faults`) and apply to the methods matching `prefix` (health checks pass):
- `error_rate`: share of calls answered with `error_code` at once (never forwarded); `error_every`: every n-th
  matching call instead (deterministic);
- `delay_s` (+ `slow_rate`): calls wait this long before being forwarded; a client deadline shorter than that
  cancels them (DEADLINE_EXCEEDED on the client side).

It runs its own event loop in a thread, so synchronous tests can drive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc import aio

_HOP_BY_HOP = ("grpc-", ":", "user-agent", "content-type", "te")


@dataclass
class Faults:
    error_rate: float = 0.0
    error_every: int = 0  # every n-th matching call fails (deterministic); 0 = off
    error_code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    delay_s: float = 0.0
    slow_rate: float = 1.0  # share of calls that get `delay_s`
    prefix: str = "/cx.nlp.v1."


@dataclass
class Call:
    at: float
    method: str
    retry: bool  # a transparent retry by the client's channel
    outcome: str = "pending"  # ok | injected:<code> | upstream:<code> | cancelled


@dataclass
class Stats:
    calls: list[Call] = field(default_factory=list)

    def of(self, prefix: str, since: float = 0.0, until: float = float("inf")) -> list[Call]:
        return [c for c in self.calls if c.method.startswith(prefix) and since <= c.at < until]


def amplification(calls: list[Call]) -> float:
    """Attempts that reached the server per call the client made (1.0 = no retries)."""
    first = sum(1 for c in calls if not c.retry)
    return len(calls) / first if first else 1.0


class FaultProxy:
    def __init__(self, upstream: str, *, seed: int = 0) -> None:
        self.upstream = upstream
        self.faults = Faults()
        self.stats = Stats()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="grpc-fault-proxy")
        self._server: aio.Server | None = None
        self._channel: aio.Channel | None = None
        self.port = 0
        self._matching = 0  # calls matching the active faults' prefix since they were set

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        self.port = self._run(self._start())
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def set_faults(self, **kwargs: Any) -> float:
        """Replace the active faults (unnamed ones go back to none); returns the monotonic time they took effect."""
        with self._lock:
            self.faults = Faults(**kwargs)
            self._matching = 0
            return time.monotonic()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    async def _start(self) -> int:
        # No retries and no service config of its own: each attempt of the client is forwarded exactly once.
        self._channel = aio.insecure_channel(
            self.upstream,
            options=[
                ("grpc.enable_retries", 0),
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ],
        )
        self._server = aio.server(
            options=[
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ]
        )
        self._server.add_generic_rpc_handlers([_Handler(self)])
        port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        return port

    async def _stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=0.5)
        if self._channel is not None:
            await self._channel.close()

    def _decide(self, method: str) -> tuple[grpc.StatusCode | None, float]:
        with self._lock:
            f = self.faults
            if not method.startswith(f.prefix):
                return None, 0.0
            self._matching += 1
            if f.error_every and self._matching % f.error_every == 0:
                return f.error_code, 0.0
            if f.error_rate and self._rng.random() < f.error_rate:
                return f.error_code, 0.0
            delay = f.delay_s if f.delay_s and self._rng.random() < f.slow_rate else 0.0
            return None, delay

    async def forward(self, method: str, request: bytes, context: aio.ServicerContext) -> bytes:
        metadata = tuple(context.invocation_metadata() or ())
        retry = any(k == "grpc-previous-rpc-attempts" for k, _ in metadata)
        call = Call(time.monotonic(), method, retry)
        with self._lock:
            self.stats.calls.append(call)
        code, delay = self._decide(method)
        if code is not None:
            call.outcome = f"injected:{code.name}"
            await context.abort(code, "injected by the fault proxy")
        try:
            if delay:
                await asyncio.sleep(delay)
            assert self._channel is not None
            upstream: Callable[..., Any] = self._channel.unary_unary(method)
            remaining = context.time_remaining()
            forwarded = tuple((k, v) for k, v in metadata if not k.startswith(_HOP_BY_HOP))
            response: bytes = await upstream(request, metadata=forwarded, timeout=remaining)
        except asyncio.CancelledError:
            call.outcome = "cancelled"
            raise
        except aio.AioRpcError as exc:
            call.outcome = f"upstream:{exc.code().name}"
            await context.abort(exc.code(), exc.details() or "")
        call.outcome = "ok"
        return response


class _Handler(grpc.GenericRpcHandler):
    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method: str = handler_call_details.method  # type: ignore[attr-defined]

        async def unary(request: bytes, context: aio.ServicerContext) -> bytes:
            return await self.proxy.forward(method, request, context)

        # no (de)serialisers: requests and responses pass through as bytes
        return grpc.unary_unary_rpc_method_handler(unary)
