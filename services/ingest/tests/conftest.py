import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cx_ingest.main import create_app
from cx_ingest.settings import SCHEMA, Settings
from cx_local.ports import free_port
from cx_local.pytest_plugin import ServiceDatabase, TokenMinter, app_client

SERVICE_DIR = Path(__file__).resolve().parents[1]


@dataclass
class Ingest:
    client: httpx.AsyncClient
    db: ServiceDatabase
    settings: Settings
    tokens: TokenMinter
    app: Any

    def auth(self, tenant: uuid.UUID, scopes: tuple[str, ...] = ("*",)) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.mint(tenant, scopes=scopes)}"}

    async def partner(self, tenant: uuid.UUID, **fields: Any) -> tuple[str, str]:
        """Register a partner and issue a key: (partner id, API key)."""
        body = {"title": "CRM", **fields}
        created = await self.client.post("/v1/partners", json=body, headers=self.auth(tenant))
        assert created.status_code == 201, created.text
        pid = created.json()["id"]
        key = await self.client.post(f"/v1/partners/{pid}/keys", json={"name": "k"}, headers=self.auth(tenant))
        assert key.status_code == 201, key.text
        return pid, key.json()["key"]

    @staticmethod
    def key(key: str) -> dict[str, str]:
        return {"X-Api-Key": key}

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.db.admin_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute(f"SET search_path = {SCHEMA}")
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()


def make_settings(db: ServiceDatabase, nats_url: str, events: Any, **overrides: Any) -> Settings:
    return Settings(
        environment="test",
        database_url=db.url,
        nats_url=nats_url,
        events_stream=events.stream,
        events_subject_prefix=events.subject_prefix,
        log_json=False,
        **overrides,
    )


@pytest.fixture
def ingest_overrides() -> dict[str, Any]:
    """Override in a test module to change settings (e.g. the NLP target)."""
    return {"analysis_enabled": False}


@pytest.fixture
async def ingest(
    cx_service_db, cx_nats_url, cx_events, cx_tokens: TokenMinter, ingest_overrides
) -> AsyncIterator[Ingest]:
    db = await cx_service_db(SERVICE_DIR, SCHEMA)
    settings = make_settings(db, cx_nats_url, cx_events, **ingest_overrides)
    app = create_app(settings)
    async with app_client(app, cx_tokens) as c:
        yield Ingest(client=c, db=db, settings=settings, tokens=cx_tokens, app=app)


@pytest.fixture
def client(ingest: Ingest) -> httpx.AsyncClient:
    return ingest.client


# -- the real NLP service with its tiny model ------------------------------------------------------------------
# `cx-nlp serve-http --tiny` once per session (BentoML, adaptive batching), and a `cx-nlp serve-grpc` adapter per use
# (each with a fresh codebook registry): real processes on ephemeral ports that the tests pause (SIGSTOP: calls hang
# mid-batch), stop and restart like a real outage. Texts longer than NLP_MAX_TEXT are refused by the adapters
# (CX_NLP_OVERLONG_TEXT=reject): an item NLP will never accept.

CX_NLP = str(Path(sys.executable).with_name("cx-nlp"))
NLP_MAX_TEXT = 1000
_METRIC = re.compile(r"^cx_nlp_grpc_request_duration_seconds_count\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$", re.M)


def _nlp_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CX_NLP_")}
    env.update(
        {
            "BENTOML_HOME": str(tmp / "bentoml"),
            "BENTOML_DO_NOT_TRACK": "true",
            "CX_NLP_MODEL": "tiny",
            "CX_NLP_MODEL_DIR": str(tmp / "no-model-here"),
            "CX_NLP_TORCH_THREADS": "1",
            "CX_NLP_MAX_LATENCY_MS": "20000",
            "CX_NLP_LOG_JSON": "false",
            "CX_NLP_LOG_LEVEL": "WARNING",
        }
    )
    return env


@pytest.fixture(scope="session")
def nlp_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of `cx-nlp serve-http --tiny`, once /readyz answers 200."""
    tmp = tmp_path_factory.mktemp("nlp")
    port = free_port()
    log_path = tmp / "serve-http.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [CX_NLP, "serve-http", "--host", "127.0.0.1", "--port", str(port), "--tiny"],
            env=_nlp_env(tmp),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 180
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"serve-http exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"serve-http not ready in 180 s:\n{log_path.read_text()[-3000:]}")
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


class NlpServer:
    """A `cx-nlp serve-grpc` adapter process in front of the session's model server."""

    max_text = NLP_MAX_TEXT  # longer texts are refused (INVALID_ARGUMENT)

    def __init__(self, upstream: str, tmp: Path) -> None:
        self.upstream = upstream
        self.tmp = tmp
        self.port = free_port()
        self.metrics_port = free_port()
        self.proc: asyncio.subprocess.Process | None = None
        self.paused = False

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        env = {**_nlp_env(self.tmp), "CX_NLP_OVERLONG_TEXT": "reject", "CX_NLP_MAX_TEXT_LENGTH": str(NLP_MAX_TEXT)}
        env["CX_NLP_HEALTH_POLL_INTERVAL_S"] = "0.2"
        cmd = [CX_NLP, "serve-grpc", "--host", "127.0.0.1", "--port", str(self.port), "--upstream", self.upstream]
        cmd += ["--metrics-port", str(self.metrics_port)]
        with (self.tmp / f"serve-grpc-{self.port}.log").open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 60
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
                    raise RuntimeError("serve-grpc not serving in 60 s")
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
        total = 0.0
        for match in _METRIC.finditer(text):
            if f'method="{method}"' in match.group("labels"):
                total += float(match.group("value"))
        return int(total)


@pytest.fixture
async def nlp_servers(nlp_http: str, tmp_path: Path) -> AsyncIterator[Callable[[], Awaitable[NlpServer]]]:
    """`await nlp_servers()` -> another running adapter; all are stopped after the test."""
    started: list[NlpServer] = []

    async def make() -> NlpServer:
        server = NlpServer(nlp_http, tmp_path)
        started.append(server)
        await server.start()
        return server

    yield make
    for server in started:
        await server.stop()


@pytest.fixture
async def nlp_server(nlp_servers: Callable[[], Awaitable[NlpServer]]) -> NlpServer:
    return await nlp_servers()


@pytest.fixture
async def nlp_down(nlp_http: str, tmp_path: Path) -> AsyncIterator[NlpServer]:
    """An adapter that is not running yet (`await nlp_down.start()` brings it up on its port)."""
    server = NlpServer(nlp_http, tmp_path)
    yield server
    await server.stop()
