"""A real BentoML HTTP service (`cx-nlp serve-http --tiny` as a subprocess, one per test session) and a real
grpc.aio adapter in front of it on an ephemeral port. Nothing of ours is mocked."""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from grpc import aio

from cx.nlp.v1 import nlp_pb2_grpc
from cx_local.nlp_harness import nlp_env, nlp_http_server
from cx_nlp.grpc_server import GrpcApp
from cx_nlp.settings import NlpSettings

CX_NLP = str(Path(sys.executable).with_name("cx-nlp"))
MAX_ITEMS = 32
MAX_TEXT = 300
MAX_BATCH = 32


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
    """The environment of a `cx-nlp` process of these tests: the tiny model and this suite's limits."""
    return nlp_env(tmp, {"CX_NLP_MAX_BATCH_SIZE": str(MAX_BATCH), "CX_NLP_MAX_TEXT_LENGTH": str(MAX_TEXT)})


@pytest.fixture(scope="session")
def nlp_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nlp")


@pytest.fixture(scope="session")
def http_url(nlp_tmp: Path) -> Iterator[str]:
    """`cx-nlp serve-http` with the tiny model and this suite's limits; yields once /readyz answers 200."""
    limits = {"CX_NLP_MAX_BATCH_SIZE": str(MAX_BATCH), "CX_NLP_MAX_TEXT_LENGTH": str(MAX_TEXT)}
    try:
        with nlp_http_server(nlp_tmp, env=limits, timeout=120) as url:
            yield url
    finally:
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
