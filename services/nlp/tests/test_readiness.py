"""Readiness: `cx-nlp serve-http` answers /livez at once, but /readyz (and so the adapter's health) only once the
model is loaded *and* warmed up; the gRPC adapter refuses calls with UNAVAILABLE until then."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cx.nlp.v1 import nlp_pb2 as pb
from cx.nlp.v1 import nlp_pb2_grpc
from cx_local.nlp_harness import stop_process_group
from cx_nlp.grpc_server import GrpcApp

HERE = Path(__file__).resolve().parent
CX_NLP = str(Path(sys.executable).with_name("cx-nlp"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _status(client: httpx.AsyncClient, path: str) -> int | None:
    try:
        return (await client.get(path, timeout=2)).status_code
    except httpx.HTTPError:
        return None


async def _until(client: httpx.AsyncClient, path: str, expected: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(1200):  # bounded wait, not a timing assertion
        assert proc.poll() is None, "serve-http exited"
        if await _status(client, path) == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path} never answered {expected}")


def _serve_http(env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """`cx-nlp serve-http --tiny` in a session of its own, output to `log_path`."""
    with log_path.open("w") as log:
        return subprocess.Popen(
            [CX_NLP, "serve-http", "--host", "127.0.0.1", "--port", str(port), "--tiny"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.fixture
def gated_server(nlp_cli_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    """`cx-nlp serve-http` whose model load and warm-up wait for gate files (see gated_pipeline.py)."""
    gate = tmp_path / "gate"
    port = free_port()
    env = {
        **nlp_cli_env,
        "BENTOML_HOME": str(tmp_path / "bentoml"),
        "CX_NLP_PIPELINE_FACTORY": "gated_pipeline:load",
        "CX_NLP_TEST_GATE": str(gate),
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    proc = _serve_http(env, port, tmp_path / "serve.log")
    try:
        yield f"http://127.0.0.1:{port}", gate, proc
    finally:
        stop_process_group(proc)


async def test_ready_only_after_load_and_warm_up(gated_server, make_settings, read_metric):
    url, gate, proc = gated_server
    app = GrpcApp(make_settings(), upstream_url=url, host="127.0.0.1", port=0)
    try:
        async with httpx.AsyncClient(base_url=url) as client:
            await _until(client, "/livez", 200, proc)
            await app.start()
            async with aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
                health = health_pb2_grpc.HealthStub(channel)
                stub = nlp_pb2_grpc.NlpServiceStub(channel)
                not_serving = health_pb2.HealthCheckResponse.NOT_SERVING

                async def not_ready_yet() -> None:
                    assert await _status(client, "/readyz") != 200
                    reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
                    assert reply.status == not_serving
                    with pytest.raises(grpc.aio.AioRpcError) as err:
                        await stub.Analyze(pb.AnalyzeRequest(items=[pb.TextInput(id="a", text="ok")]), timeout=10)
                    assert err.value.code() == grpc.StatusCode.UNAVAILABLE

                await not_ready_yet()  # loading
                gate.with_suffix(".load").touch()
                metrics = ""
                for _ in range(600):  # the model is loaded once its load time is published
                    metrics = (await client.get("/metrics")).text
                    if read_metric(metrics, "cx_nlp_model_load_seconds"):
                        break
                    await asyncio.sleep(0.1)
                assert read_metric(metrics, "cx_nlp_model_load_seconds")
                assert read_metric(metrics, "cx_nlp_model_ready") == {"cx_nlp_model_ready": 0.0}
                await not_ready_yet()  # loaded, warming up

                gate.with_suffix(".warm").touch()
                await _until(client, "/readyz", 200, proc)
                metrics = (await client.get("/metrics")).text
                assert read_metric(metrics, "cx_nlp_model_ready") == {"cx_nlp_model_ready": 1.0}
                assert read_metric(metrics, "cx_nlp_model_warmup_seconds")
                assert await app.adapter.wait_ready(30)
                reply = await stub.Analyze(pb.AnalyzeRequest(items=[pb.TextInput(id="a", text="ok")]), timeout=30)
                assert [r.id for r in reply.results] == ["a"]
    finally:
        await app.stop(grace=1)


async def test_workers_exit_when_the_server_process_is_killed(nlp_cli_env: dict[str, str], tmp_path: Path) -> None:
    """SIGKILL of BentoML's arbiter (OOM killer, kill -9) must not leave its model workers behind as orphans."""
    psutil = pytest.importorskip("psutil")
    if not sys.platform.startswith("linux"):
        pytest.skip("parent-death signals are Linux only")
    port = free_port()
    proc = _serve_http({**nlp_cli_env, "BENTOML_HOME": str(tmp_path / "bentoml")}, port, tmp_path / "serve.log")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            await _until(client, "/readyz", 200, proc)
        workers = psutil.Process(proc.pid).children(recursive=True)
        assert workers, "no worker processes"
        proc.kill()  # the arbiter only: no process group signal
        proc.wait()
        _, alive = psutil.wait_procs(workers, timeout=30)
        assert not alive, f"orphaned workers: {[p.pid for p in alive]}"
    finally:
        with contextlib.suppress(ProcessLookupError):  # whatever is left of the server's process group
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
