"""The real NLP service for tests: `cx-nlp serve-http --tiny` (BentoML, adaptive batching, the tiny model built in
code) and `cx-nlp serve-grpc` adapters in front of it, as processes on ephemeral ports.

Tests pause (SIGSTOP: calls hang mid-batch), stop and restart adapters like a real outage, and read how many RPCs an
adapter answered from its Prometheus metrics. The pytest fixtures built on this live in `cx_local.pytest_plugin`.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from cx_local.ports import free_port

_METRIC = re.compile(r"^cx_nlp_grpc_request_duration_seconds_count\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$", re.M)


def cx_nlp_binary() -> str:
    return str(Path(sys.executable).with_name("cx-nlp"))


def nlp_env(state: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a test NLP process: the tiny model, one worker of one torch thread (batching and metrics
    in one process, whatever the host), quiet logs, its own BentoML home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CX_NLP_")}
    env.update(
        {
            "BENTOML_HOME": str(state / "bentoml"),
            "BENTOML_DO_NOT_TRACK": "true",
            "CX_NLP_MODEL": "tiny",
            "CX_NLP_MODEL_DIR": str(state / "no-model-here"),
            "CX_NLP_WORKERS": "1",
            "CX_NLP_TORCH_THREADS": "1",
            "CX_NLP_MAX_LATENCY_MS": "20000",
            "CX_NLP_LOG_JSON": "false",
            "CX_NLP_LOG_LEVEL": "WARNING",
        }
    )
    env.update(extra or {})
    return env


def stop_process_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group of `proc` (started with `start_new_session`), SIGKILL after 30 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def nlp_http_server(state: Path, *, timeout: float = 180.0, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """Run `cx-nlp serve-http --tiny` until the block ends; yields its URL once /readyz answers 200."""
    state.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = state / f"serve-http-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(  # noqa: S603 - our own CLI
            [cx_nlp_binary(), "serve-http", "--host", "127.0.0.1", "--port", str(port), "--tiny"],
            env=nlp_env(state, env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"serve-http exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"serve-http not ready in {timeout:.0f} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        stop_process_group(proc)


class NlpAdapter:
    """A `cx-nlp serve-grpc` adapter process in front of a model server (`upstream`, the serve-http URL)."""

    def __init__(self, upstream: str, state: Path, env: Mapping[str, str] | None = None) -> None:
        self.upstream = upstream
        self.state = state
        self.env = dict(env or {})
        self.port = free_port()
        self.metrics_port = free_port()
        self.proc: asyncio.subprocess.Process | None = None
        self.paused = False

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, wait_s: float = 60.0) -> None:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        env = nlp_env(self.state, {"CX_NLP_HEALTH_POLL_INTERVAL_S": "0.2", **self.env})
        cmd = [cx_nlp_binary(), "serve-grpc", "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--upstream", self.upstream, "--metrics-port", str(self.metrics_port)]
        self.state.mkdir(parents=True, exist_ok=True)
        with (self.state / f"serve-grpc-{self.port}.log").open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + wait_s
        async with grpc.aio.insecure_channel(self.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"serve-grpc exited with {self.proc.returncode}")
                try:
                    reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"serve-grpc not serving in {wait_s:.0f} s")
                await asyncio.sleep(0.1)

    def pause(self) -> None:
        """SIGSTOP: the adapter still accepts connections (the kernel does) but answers nothing."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGCONT)
        self.paused = False

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.paused:
            self.resume()
        if self.proc.returncode is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        await self.proc.wait()
        self.proc = None

    def calls(self, method: str) -> int:
        """How many `method` RPCs this adapter has answered (its Prometheus metrics)."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        return int(
            sum(float(m.group("value")) for m in _METRIC.finditer(text) if f'method="{method}"' in m.group("labels"))
        )
