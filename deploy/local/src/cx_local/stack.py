"""What `cx-local up` runs: infrastructure, provisioning, migrations, then the services, in that order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from cx_local.config import SERVICE_SCHEMAS, LocalConfig
from cx_local.errors import LauncherError
from cx_local.nats import EmbeddedNats
from cx_local.ports import require_free
from cx_local.postgres import EmbeddedPostgres, PgInfo
from cx_local.procs import spawn, stop
from cx_local.provision import provision_schema, run

COLORS = ["\033[36m", "\033[35m", "\033[33m", "\033[32m", "\033[34m", "\033[91m", "\033[96m"]
RESET = "\033[0m"
DIM = "\033[2m"


@dataclass
class ServiceSpec:
    name: str
    args: list[str]
    port: int
    ready: tuple[str, str]  # ("http", url) | ("grpc", target)
    env: dict[str, str] = field(default_factory=dict)
    url: str = ""


@dataclass
class Running:
    spec: ServiceSpec
    proc: subprocess.Popen[bytes]
    pump: threading.Thread


def _bin(name: str) -> str:
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise LauncherError(f"{name} is not installed in {path.parent}: run `make venv`")
    return str(path)


def _render(line: str) -> str:
    """JSON log lines become `time level event key=value ...`; anything else passes through."""
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if not isinstance(record, dict):
        return line
    ts = str(record.pop("timestamp", ""))[11:19]
    level = str(record.pop("level", "")).upper()[:5]
    event = record.pop("event", "")
    for noise in ("service", "logger"):
        record.pop(noise, None)
    rest = " ".join(f"{k}={v}" for k, v in record.items())
    return f"{ts} {level:<5} {event} {rest}".rstrip()


def _pump(name: str, color: str, stream: IO[bytes], out: IO[str]) -> None:
    prefix = f"{color}{name:>9} |{RESET} " if out.isatty() else f"{name:>9} | "
    for raw in iter(stream.readline, b""):
        text = raw.decode("utf-8", errors="replace").rstrip()
        if text:
            out.write(prefix + _render(text) + "\n")
            out.flush()


class Stack:
    def __init__(self, config: LocalConfig, *, out: IO[str] = sys.stdout, nlp_model: str | None = None) -> None:
        self.config = config
        self.out = out
        self.nlp_model = nlp_model or os.environ.get("CX_NLP_MODEL", "default")
        self.pg: EmbeddedPostgres | None = None
        self.nats: EmbeddedNats | None = None
        self.pg_info: PgInfo | None = None
        self.admin_url: str = ""
        self.nats_url: str = ""
        self.running: list[Running] = []
        self.demo_loader: tuple[subprocess.Popen[bytes], threading.Thread] | None = None

    def say(self, message: str) -> None:
        self.out.write(f"cx-local: {message}\n")
        self.out.flush()

    # -- infrastructure -------------------------------------------------------------------------------

    def check_ports(self) -> None:
        c = self.config
        wanted = [
            (c.gateway_port, "gateway", "CX_LOCAL_GATEWAY_PORT"),
            (c.survey_port, "survey", "CX_LOCAL_SURVEY_PORT"),
            (c.ingest_port, "ingest", "CX_LOCAL_INGEST_PORT"),
            (c.alerts_port, "alerts", "CX_LOCAL_ALERTS_PORT"),
        ]
        if not c.external_nlp_target:
            wanted += [
                (c.nlp_http_port, "nlp (http)", "CX_LOCAL_NLP_HTTP_PORT"),
                (c.nlp_grpc_port, "nlp (grpc)", "CX_LOCAL_NLP_GRPC_PORT"),
            ]
        if not c.external_database_url:
            wanted.append((c.pg_port, "postgres", "CX_LOCAL_PG_PORT"))
        if not c.external_nats_url:
            wanted += [
                (c.nats_port, "nats", "CX_LOCAL_NATS_PORT"),
                (c.nats_monitor_port, "nats monitoring", "CX_LOCAL_NATS_MONITOR_PORT"),
            ]
        for port, what, env in wanted:
            require_free(port, what, env)

    def start_infra(self) -> None:
        c = self.config
        c.state_dir.mkdir(parents=True, exist_ok=True)
        if c.external_database_url:
            self.admin_url = c.external_database_url
            self.say("using external Postgres from CX_DATABASE_URL")
        else:
            self.pg = EmbeddedPostgres(c.pg_dir, port=c.pg_port)
            self.pg.check_version()
            self.say(f"starting Postgres on 127.0.0.1:{c.pg_port} (data in {c.pg_dir})")
            self.pg_info = self.pg.start()
            self.admin_url = self.pg_info.admin_url
        if c.external_nats_url:
            self.nats_url = c.external_nats_url
            self.say("using external NATS from CX_NATS_URL")
        else:
            self.nats = EmbeddedNats(c.nats_dir, port=c.nats_port, monitor_port=c.nats_monitor_port)
            self.say(f"starting NATS JetStream on 127.0.0.1:{c.nats_port} (store in {c.nats_dir})")
            self.nats_url = self.nats.start()

    def service_db_url(self, schema: str) -> str:
        password = self.config.service_passwords()[schema]
        base = self.admin_url.split("://", 1)[1]
        host_db = base.split("@", 1)[1]
        return f"postgresql://cx_{schema}:{password}@{host_db}"

    def provision_and_migrate(self) -> None:
        database = self.admin_url.rsplit("/", 1)[1].split("?")[0]
        passwords = self.config.service_passwords()
        for service, schema in SERVICE_SCHEMAS.items():
            run(provision_schema(self.admin_url, database, schema, passwords[schema]))
            env = {**os.environ, f"CX_{service.upper()}_DATABASE_URL": self.service_db_url(schema)}
            result = subprocess.run(  # noqa: S603
                [_bin(f"cx-{service}"), "migrate"], env=env, capture_output=True, text=True, check=False
            )
            if result.returncode != 0:
                tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
                raise LauncherError(f"migrations of {service} failed: {tail[0]}")
        self.say(f"schemas ready: {', '.join(SERVICE_SCHEMAS.values())} (one role each)")

    def build_model(self) -> None:
        if self.config.external_nlp_target or self.nlp_model == "tiny":
            return
        self.say(f"checking the default NLP model in {self.config.model_dir}")
        env = {**os.environ, "CX_NLP_MODEL_DIR": str(self.config.model_dir)}
        result = subprocess.run([_bin("cx-nlp"), "build-model", "--if-missing"], env=env, check=False)  # noqa: S603
        if result.returncode != 0:
            raise LauncherError("building the default NLP model failed (see the output above)")

    # -- services -------------------------------------------------------------------------------------

    def specs(self) -> list[ServiceSpec]:
        c = self.config
        nlp_target = c.external_nlp_target or f"127.0.0.1:{c.nlp_grpc_port}"
        jwks = f"http://127.0.0.1:{c.gateway_port}/api/v1/auth/jwks"
        internal = {
            "CX_GATEWAY_URL": f"http://127.0.0.1:{c.gateway_port}",
            "CX_SURVEY_URL": f"http://127.0.0.1:{c.survey_port}",
            "CX_INGEST_URL": f"http://127.0.0.1:{c.ingest_port}",
            "CX_ALERTS_URL": f"http://127.0.0.1:{c.alerts_port}",
            "CX_NLP_GRPC_TARGET": nlp_target,
        }
        specs: list[ServiceSpec] = []
        if not c.external_nlp_target:
            nlp_env = {"CX_NLP_MODEL_DIR": str(c.model_dir), "CX_NLP_MODEL": self.nlp_model}
            specs.append(
                ServiceSpec(
                    "nlp-http",
                    [_bin("cx-nlp"), "serve-http", "--host", "127.0.0.1", "--port", str(c.nlp_http_port)],
                    c.nlp_http_port,
                    ("http", f"http://127.0.0.1:{c.nlp_http_port}/readyz"),
                    env=nlp_env,
                    url=f"http://127.0.0.1:{c.nlp_http_port}",
                )
            )
            specs.append(
                ServiceSpec(
                    "nlp-grpc",
                    [
                        _bin("cx-nlp"),
                        "serve-grpc",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(c.nlp_grpc_port),
                        "--upstream",
                        f"http://127.0.0.1:{c.nlp_http_port}",
                    ],
                    c.nlp_grpc_port,
                    ("grpc", f"127.0.0.1:{c.nlp_grpc_port}"),
                    env=nlp_env,
                    url=f"grpc://127.0.0.1:{c.nlp_grpc_port}",
                )
            )
        ports = {"gateway": c.gateway_port, "survey": c.survey_port, "ingest": c.ingest_port, "alerts": c.alerts_port}
        for service, schema in SERVICE_SCHEMAS.items():
            port = ports[service]
            prefix = f"CX_{service.upper()}_"
            env = {
                **internal,
                f"{prefix}DATABASE_URL": self.service_db_url(schema),
                f"{prefix}NATS_URL": self.nats_url,
                f"{prefix}PORT": str(port),
                f"{prefix}JWT_JWKS_URL": jwks,
            }
            if service == "ingest":  # uploaded files must outlive a restart so imports can resume
                env[f"{prefix}IMPORT_DIR"] = str(c.state_dir / "imports")
            specs.append(
                ServiceSpec(
                    service,
                    [_bin(f"cx-{service}"), "serve", "--host", "127.0.0.1", "--port", str(port)],
                    port,
                    ("http", f"http://127.0.0.1:{port}/readyz"),
                    env=env,
                    url=f"http://127.0.0.1:{port}",
                )
            )
        return specs

    def start_services(self) -> None:
        for index, spec in enumerate(self.specs()):
            env = {**os.environ, **spec.env, "PYTHONUNBUFFERED": "1"}
            proc = spawn(spec.args, env=env, cwd=self.config.root)
            assert proc.stdout is not None
            pump = threading.Thread(
                target=_pump, args=(spec.name, COLORS[index % len(COLORS)], proc.stdout, self.out), daemon=True
            )
            pump.start()
            self.running.append(Running(spec, proc, pump))

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        pending = {r.spec.name: r for r in self.running}
        while pending:
            for name, item in list(pending.items()):
                code = item.proc.poll()
                if code is not None:
                    raise LauncherError(f"{name} exited with code {code} while starting (see its log lines above)")
                if _probe(item.spec.ready):
                    del pending[name]
            if not pending:
                break
            if time.monotonic() > deadline:
                raise LauncherError(f"not ready after {timeout:.0f}s: {', '.join(sorted(pending))}")
            time.sleep(0.3)

    def _gateway_cli(self) -> tuple[str, dict[str, str]] | None:
        gateway = _bin("cx-gateway")
        probe = subprocess.run([gateway, "--help"], capture_output=True, text=True, check=False)  # noqa: S603
        if "seed-demo" not in probe.stdout:
            return None
        spec = next(r.spec for r in self.running if r.spec.name == "gateway")
        return gateway, {**os.environ, **spec.env}

    def seed_demo(self) -> None:
        """Create the demo tenant, org tree and users (idempotent, quick); the gateway prints the demo logins."""
        found = self._gateway_cli()
        if found is None:
            return
        gateway, env = found
        result = subprocess.run(  # noqa: S603
            [gateway, "seed-demo", "--no-data"], env=env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            self.say(f"warning: creating the demo tenant failed: {tail[0]}")
            return
        for line in result.stdout.strip().splitlines():
            self.say(line)

    def start_demo_data(self, scale: float = 1.0) -> None:
        """Load the demo's sample data through the services' APIs in the background, its progress streamed with a
        `demo` prefix. Each part is recorded once loaded, so a run interrupted by Ctrl-C resumes on the next `up`."""
        found = self._gateway_cli()
        if found is None:
            return
        gateway, env = found
        proc = spawn([gateway, "seed-demo", "--scale", str(scale)], env={**env, "PYTHONUNBUFFERED": "1"})
        assert proc.stdout is not None
        pump = threading.Thread(target=_pump, args=("demo", DIM, proc.stdout, self.out), daemon=True)
        pump.start()
        self.demo_loader = (proc, pump)

    def write_status(self) -> None:
        status = {
            "pid": os.getpid(),
            "started_at": time.time(),
            "database": "external" if self.config.external_database_url else f"127.0.0.1:{self.config.pg_port}",
            "nats": self.nats_url,
            "services": {r.spec.name: {"url": r.spec.url, "pid": r.proc.pid} for r in self.running},
        }
        self.config.status_file.write_text(json.dumps(status, indent=2))

    def first_failed(self) -> tuple[str, int] | None:
        for item in self.running:
            code = item.proc.poll()
            if code is not None:
                return item.spec.name, code
        return None

    def shutdown(self) -> None:
        # The demo loader, then services (they drain work and flush outboxes), then NATS, then Postgres.
        if self.demo_loader is not None:
            stop(self.demo_loader[0], timeout=10)
            self.demo_loader[1].join(timeout=2)
            self.demo_loader = None
        for item in reversed(self.running):
            stop(item.proc, timeout=20)
        for item in self.running:
            item.pump.join(timeout=2)
        self.running.clear()
        if self.nats is not None:
            self.nats.stop()
        if self.pg is not None:
            self.pg.stop()
        self.config.status_file.unlink(missing_ok=True)


def _probe(ready: tuple[str, str]) -> bool:
    kind, target = ready
    if kind == "http":
        try:
            return httpx.get(target, timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        with grpc.insecure_channel(target) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=2.0)
            return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False
