"""A real BentoML HTTP service (`cx-nlp serve-http --tiny` as a subprocess, one per test session) and a real
grpc.aio adapter in front of it on an ephemeral port. Nothing of ours is mocked."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from grpc import aio

from cx.nlp.v1 import nlp_pb2_grpc
from cx_nlp.grpc_server import GrpcApp
from cx_nlp.settings import NlpSettings

CX_NLP = str(Path(sys.executable).with_name("cx-nlp"))
MAX_ITEMS = 32
MAX_TEXT = 300
MAX_BATCH = 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def adapter_settings(**overrides: Any) -> NlpSettings:
    values: dict[str, Any] = {
        "model": "tiny",
        "max_items_per_request": MAX_ITEMS,
        "max_text_length": MAX_TEXT,
        "max_batch_size": MAX_BATCH,
        "health_poll_interval_s": 0.1,
        "shutdown_grace_s": 5.0,
        "log_json": False,
    }
    values.update(overrides)
    return NlpSettings(**values)


def cli_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CX_NLP_")}
    env.update(
        {
            "BENTOML_HOME": str(tmp / "bentoml"),
            "BENTOML_DO_NOT_TRACK": "true",
            "CX_NLP_MODEL": "tiny",
            "CX_NLP_MODEL_DIR": str(tmp / "no-model-here"),
            "CX_NLP_MAX_BATCH_SIZE": str(MAX_BATCH),
            "CX_NLP_MAX_TEXT_LENGTH": str(MAX_TEXT),
            "CX_NLP_MAX_LATENCY_MS": "20000",
            "CX_NLP_TORCH_THREADS": "1",
        }
    )
    return env


@pytest.fixture(scope="session")
def nlp_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nlp")


@pytest.fixture(scope="session")
def http_url(nlp_tmp: Path) -> Iterator[str]:
    """`cx-nlp serve-http` with the tiny model; yields once /readyz answers 200."""
    port = free_port()
    log_path = nlp_tmp / "serve-http.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [CX_NLP, "serve-http", "--host", "127.0.0.1", "--port", str(port), "--tiny"],
        env=cli_env(nlp_tmp),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"serve-http exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"serve-http not ready in 120s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
        shutil.rmtree(nlp_tmp / "bentoml", ignore_errors=True)


@pytest.fixture(scope="session")
async def grpc_app(http_url: str) -> AsyncIterator[GrpcApp]:
    app = GrpcApp(adapter_settings(), upstream_url=http_url, host="127.0.0.1", port=0)
    await app.start()
    assert await app.adapter.wait_ready(60), "adapter never saw the upstream ready"
    yield app
    await app.stop(grace=1)


@pytest.fixture(scope="session")
async def channel(grpc_app: GrpcApp) -> AsyncIterator[aio.Channel]:
    async with aio.insecure_channel(f"127.0.0.1:{grpc_app.port}") as ch:
        yield ch


@pytest.fixture(scope="session")
def stub(channel: aio.Channel) -> nlp_pb2_grpc.NlpServiceStub:
    return nlp_pb2_grpc.NlpServiceStub(channel)


def metric_values(text: str, name: str, **labels: str) -> dict[str, float]:
    """Samples of one metric family from Prometheus text, keyed by the sample name + `le` when present."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        match = re.match(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$", line)
        if not match:
            continue
        sample, raw_labels, value = match.groups()
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', raw_labels or ""))
        if any(found.get(k) != v for k, v in labels.items()):
            continue
        key = sample + (f"[le={found['le']}]" if "le" in found else "")
        out[key] = out.get(key, 0.0) + float(value)
    return out


@pytest.fixture(scope="session")
def make_settings() -> Any:
    return adapter_settings


@pytest.fixture(scope="session")
def read_metric() -> Any:
    return metric_values


@pytest.fixture(scope="session")
def nlp_cli_env(nlp_tmp: Path) -> dict[str, str]:
    return cli_env(nlp_tmp)
