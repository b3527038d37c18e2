"""The processes of the time-to-alert run: embedded Postgres and NATS, one database with a schema + role per service
(cx_local.provision, as `cx-local up` does), `cx-<svc> migrate`, a JWKS endpoint for the services' token checks, and
the services started with their `cx-<svc> serve` commands (nlp with `cx-nlp serve-http` + `serve-grpc`)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ("survey", "alerts", "ingest")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bin(name: str) -> str:
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        raise RuntimeError(f"{name} is not installed next to {sys.executable}")
    return str(path)


@dataclass
class Infra:
    pg_url: str  # superuser, maintenance database
    nats_url: str
    jwks_url: str
    work_dir: Path
    # login roles are per cluster: one password per service role, whatever the database
    passwords: dict[str, str] = field(default_factory=lambda: {s: secrets.token_urlsafe(12) for s in SCHEMAS})

    def url(self, database: str) -> str:
        return f"{self.pg_url.rsplit('/', 1)[0]}/{database}"


@dataclass
class Database:
    """One database with a schema + role per service, migrated; each run of services gets its own."""

    name: str
    admin_url: str
    passwords: dict[str, str]

    def role_url(self, schema: str) -> str:
        host_db = self.admin_url.split("@", 1)[1]
        return f"postgresql://cx_{schema}:{self.passwords[schema]}@{host_db}"


@dataclass(frozen=True)
class Events:
    """The JetStream stream and subject prefix of one set of services (sets in one run never see each other)."""

    stream: str
    prefix: str


class _Jwks(BaseHTTPRequestHandler):
    body = b"{}"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *_: object) -> None:
        return


@contextmanager
def jwks_server(jwks: Mapping[str, object]) -> Iterator[str]:
    handler = type("Jwks", (_Jwks,), {"body": json.dumps(jwks).encode()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks"
    finally:
        server.shutdown()
        server.server_close()


@asynccontextmanager
async def infrastructure(jwks: Mapping[str, object], *, durable: bool) -> AsyncIterator[Infra]:
    """Postgres (fsync on, like `cx-local up`, unless `durable` is False), NATS JetStream and a JWKS endpoint."""
    from cx_local.nats import EmbeddedNats
    from cx_local.postgres import EmbeddedPostgres

    work = Path(tempfile.mkdtemp(prefix="cx-bench-tta-"))
    pg = EmbeddedPostgres(work / "pg", port=free_port(), durable=durable)
    nats = EmbeddedNats(work / "nats", port=free_port(), monitor_port=free_port())
    try:
        info = pg.start()
        nats_url = nats.start()
        with jwks_server(jwks) as jwks_url:
            yield Infra(info.url(database="postgres"), nats_url, jwks_url, work)
    finally:
        nats.stop()
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)


async def database(infra: Infra, name: str) -> Database:
    """A new database provisioned like the local stack's (cx_local.provision) and migrated by `cx-<svc> migrate`."""
    from cx_local.provision import create_database, provision_schema

    await create_database(infra.pg_url, name)
    db = Database(name, infra.url(name), infra.passwords)
    for schema in SCHEMAS:
        await provision_schema(infra.pg_url, name, schema, db.passwords[schema])
    await asyncio.gather(*(asyncio.to_thread(migrate, db, schema) for schema in SCHEMAS))
    return db


def migrate(db: Database, service: str) -> None:
    env = {**clean_env(), f"CX_{service.upper()}_DATABASE_URL": db.role_url(service)}
    result = subprocess.run([_bin(f"cx-{service}"), "migrate"], env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"migrations of {service} failed: {(result.stderr or result.stdout).strip()[-500:]}")


def clean_env() -> dict[str, str]:
    """The bench's environment without any CX_ setting (each service gets exactly what the run decides)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CX_")}


@dataclass
class Service:
    name: str
    args: list[str]
    env: dict[str, str]
    ready_url: str
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    grpc: bool = False
    _log: object = field(default=None, repr=False)

    def start(self) -> None:
        log = self.log_path.open("ab")
        self._log = log
        self.proc = subprocess.Popen(
            self.args,
            env={**self.env, "PYTHONUNBUFFERED": "1"},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {' | '.join(tail)}")
        if self.grpc:
            return _grpc_serving(self.ready_url)
        try:
            return httpx.get(self.ready_url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        if self._log is not None:
            self._log.close()  # type: ignore[attr-defined]
            self._log = None


def _grpc_serving(target: str) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        with grpc.insecure_channel(target) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=2.0)
            return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


def fastapi_service(
    infra: Infra, db: Database, events: Events, name: str, settings: dict[str, str], tag: str
) -> Service:
    """`cx-<name> serve` with its database role, NATS stream, JWKS and `settings` (names without CX_<NAME>_)."""
    port = free_port()
    prefix = f"CX_{name.upper()}_"
    env = {
        **clean_env(),
        f"{prefix}DATABASE_URL": db.role_url(name),
        f"{prefix}NATS_URL": infra.nats_url,
        f"{prefix}EVENTS_STREAM": events.stream,
        f"{prefix}EVENTS_SUBJECT_PREFIX": events.prefix,
        f"{prefix}JWT_JWKS_URL": infra.jwks_url,
        f"{prefix}LOG_LEVEL": "WARNING",
        f"{prefix}LOG_JSON": "true",
        **{prefix + k.upper(): v for k, v in settings.items()},
    }
    args = [_bin(f"cx-{name}"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    return Service(name, args, env, f"http://127.0.0.1:{port}/readyz", infra.work_dir / f"{name}-{tag}.log")


def nlp_services(infra: Infra) -> tuple[Service, Service, str]:
    """The nlp service as the stack runs it (BentoML HTTP + gRPC adapter) with the tiny in-code model."""
    http_port, grpc_port = free_port(), free_port()
    env = {
        **clean_env(),
        "CX_NLP_MODEL": "tiny",
        "CX_NLP_LOG_LEVEL": "WARNING",
        "BENTOML_HOME": str(infra.work_dir / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
    }
    http = Service(
        "nlp-http",
        [_bin("cx-nlp"), "serve-http", "--host", "127.0.0.1", "--port", str(http_port), "--tiny"],
        env,
        f"http://127.0.0.1:{http_port}/readyz",
        infra.work_dir / "nlp-http.log",
    )
    target = f"127.0.0.1:{grpc_port}"
    grpc_args = [_bin("cx-nlp"), "serve-grpc", "--host", "127.0.0.1", "--port", str(grpc_port)]
    grpc_args += ["--upstream", f"http://127.0.0.1:{http_port}"]
    grpc = Service("nlp-grpc", grpc_args, env, target, infra.work_dir / "nlp-grpc.log", grpc=True)
    return http, grpc, target


def wait_ready(services: list[Service], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    pending = list(services)
    while pending:
        pending = [s for s in pending if not s.ready()]
        if not pending:
            return
        if time.monotonic() > deadline:
            tails = {s.name: s.log_path.read_text(errors="replace").strip().splitlines()[-3:] for s in pending}
            raise RuntimeError(f"not ready after {timeout:.0f}s: {tails}")
        time.sleep(0.25)


@contextmanager
def running(services: list[Service]) -> Iterator[list[Service]]:
    try:
        for service in services:
            service.start()
        wait_ready(services)
        yield services
    finally:
        for service in reversed(services):
            service.stop()
