"""A whole local stack for cross-service tests, driven through the launcher's own building blocks.

`cx_local.stack.Stack` (the code behind `cx-local up`) starts embedded Postgres and NATS, provisions one role per
schema, migrates, and describes every service process (`specs()`). This harness reuses exactly that, but keeps the
service processes itself so a test can `kill -9` one, start it again, stop/start Postgres or NATS, and read every
line each process logged (raw, for the secret scan).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from cx_local.config import LocalConfig
from cx_local.ports import free_port
from cx_local.procs import spawn, stop
from cx_local.stack import ServiceSpec, _probe
from cx_local.stack import Stack as LauncherStack

APP_SERVICES = ("gateway", "survey", "ingest", "alerts")
ALL_SERVICES = ("nlp-http", "nlp-grpc", *APP_SERVICES)


class _Config(LocalConfig):
    """LocalConfig with an explicit state directory (no process-wide CX_STATE_DIR needed)."""

    def __init__(self, state: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._state = state

    @property
    def state_dir(self) -> Path:
        return self._state.resolve()


class _Log:
    """A write-only text sink for the launcher's own messages."""

    def __init__(self, sink: list[str]) -> None:
        self.sink = sink

    def write(self, text: str) -> int:
        self.sink.extend(line for line in text.splitlines() if line)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


@dataclass
class Proc:
    spec: ServiceSpec
    popen: subprocess.Popen[bytes]
    pump: threading.Thread
    starts: int = 1


@dataclass
class LocalStack:
    """`state=None`: a fresh directory outside pytest's temp root (pytest resets that root to mode 700 whenever any
    pytest session starts, which would lock out the unprivileged Postgres user on a restart); removed by `down()`."""

    state: Path | None = None
    env: dict[str, dict[str, str]] = field(default_factory=dict)  # extra env per service name
    nlp_model: str = "tiny"
    procs: dict[str, Proc] = field(default_factory=dict)
    logs: dict[str, list[str]] = field(default_factory=dict)
    launcher_log: list[str] = field(default_factory=list)
    internal_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    def __post_init__(self) -> None:
        self._own_state = self.state is None
        if self.state is None:
            self.state = Path(tempfile.mkdtemp(prefix="cx-e2e-"))
        ports = {name: free_port() for name in ("gw", "sv", "in", "al", "nh", "ng", "pg", "nats", "natsm")}
        self.config = _Config(
            self.state,
            gateway_port=ports["gw"],
            survey_port=ports["sv"],
            ingest_port=ports["in"],
            alerts_port=ports["al"],
            nlp_http_port=ports["nh"],
            nlp_grpc_port=ports["ng"],
            pg_port=ports["pg"],
            nats_port=ports["nats"],
            nats_monitor_port=ports["natsm"],
            external_database_url=None,
            external_nats_url=None,
            external_nlp_target=None,
        )
        self.launcher = LauncherStack(self.config, out=_Log(self.launcher_log), nlp_model=self.nlp_model)
        self.env.setdefault("gateway", {})
        self.env["gateway"].setdefault("CX_GATEWAY_INTERNAL_SECRET", self.internal_secret)
        self._lock = threading.Lock()

    # -- urls ---------------------------------------------------------------------------------------

    def url(self, service: str) -> str:
        port = {
            "gateway": self.config.gateway_port,
            "survey": self.config.survey_port,
            "ingest": self.config.ingest_port,
            "alerts": self.config.alerts_port,
            "nlp-http": self.config.nlp_http_port,
        }[service]
        return f"http://127.0.0.1:{port}"

    @property
    def admin_dsn(self) -> str:
        return self.launcher.admin_url

    # -- lifecycle ----------------------------------------------------------------------------------

    def up(self, timeout: float = 180.0) -> None:
        assert self.state is not None
        self.state.mkdir(parents=True, exist_ok=True)
        self.launcher.check_ports()
        self.launcher.start_infra()
        self.launcher.provision_and_migrate()
        self.launcher.build_model()
        for spec in self.launcher.specs():
            self._start(spec)
        self.wait_ready(ALL_SERVICES, timeout=timeout)

    def down(self) -> None:
        for name in reversed(list(self.procs)):
            stop(self.procs[name].popen, timeout=15)
        for proc in self.procs.values():
            proc.pump.join(timeout=2)
        if self.launcher.nats is not None:
            self.launcher.nats.stop()
        if self.launcher.pg is not None:
            self.launcher.pg.stop()
        if self._own_state and self.state is not None:
            shutil.rmtree(self.state, ignore_errors=True)

    def dump_logs(self, path: Path) -> None:
        """Every captured log line, one file per process (kept by pytest's tmp dirs for a post-mortem)."""
        path.mkdir(parents=True, exist_ok=True)
        for name, lines in [*self.logs.items(), ("launcher", self.launcher_log)]:
            (path / f"{name}.log").write_text("\n".join(lines) + "\n")

    def _spec(self, name: str) -> ServiceSpec:
        return next(s for s in self.launcher.specs() if s.name == name)

    def _start(self, spec: ServiceSpec, extra: Mapping[str, str] | None = None) -> None:
        # Only what the launcher would give the service plus the test's extras: no CX_* leaking in from pytest.
        base = {k: v for k, v in os.environ.items() if not k.startswith("CX_")}
        env = {**base, **spec.env, **self.env.get(spec.name, {}), **(extra or {}), "PYTHONUNBUFFERED": "1"}
        popen = spawn(spec.args, env=env, cwd=self.config.root)
        sink = self.logs.setdefault(spec.name, [])
        assert popen.stdout is not None
        stream: IO[bytes] = popen.stdout

        def pump() -> None:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", errors="replace").rstrip()
                if line:
                    sink.append(line)

        thread = threading.Thread(target=pump, daemon=True, name=f"pump-{spec.name}")
        thread.start()
        starts = self.procs[spec.name].starts + 1 if spec.name in self.procs else 1
        self.procs[spec.name] = Proc(spec, popen, thread, starts)

    def wait_ready(self, names: tuple[str, ...] | list[str], timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        pending = list(names)
        while pending:
            for name in list(pending):
                proc = self.procs[name]
                code = proc.popen.poll()
                if code is not None:
                    raise AssertionError(f"{name} exited with {code} while starting:\n" + self.tail(name))
                if _probe(proc.spec.ready):
                    pending.remove(name)
            if pending and time.monotonic() > deadline:
                raise AssertionError(f"not ready after {timeout:.0f}s: {pending}\n" + self.tail(pending[0]))
            time.sleep(0.2)

    def tail(self, name: str, n: int = 30) -> str:
        return "\n".join(self.logs.get(name, [])[-n:])

    # -- per-process control ------------------------------------------------------------------------

    def pid(self, name: str) -> int:
        return self.procs[name].popen.pid

    def kill9(self, name: str) -> None:
        """SIGKILL the service's whole process group (no cleanup, no flush: a crash)."""
        proc = self.procs[name].popen
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        self.procs[name].pump.join(timeout=2)

    def stop(self, name: str) -> None:
        stop(self.procs[name].popen, timeout=15)
        self.procs[name].pump.join(timeout=2)

    def start(self, name: str, extra_env: Mapping[str, str] | None = None, *, wait: bool = True) -> None:
        """(Re)start one service with the launcher's spec (plus extra env, e.g. a shifted clock)."""
        assert self.procs[name].popen.poll() is not None, f"{name} is still running"
        self._start(self._spec(name), extra_env)
        if wait:
            self.wait_ready([name])

    def alive(self, name: str) -> bool:
        return self.procs[name].popen.poll() is None

    def restart_postgres(self, down_s: float = 0.0) -> None:
        pg = self.launcher.pg
        assert pg is not None
        pg.stop()  # fast shutdown: open transactions roll back, committed ones are on disk
        time.sleep(down_s)
        pg.start()

    def stop_nats(self) -> None:
        assert self.launcher.nats is not None
        self.launcher.nats.stop()

    def start_nats(self) -> None:
        assert self.launcher.nats is not None
        self.launcher.nats.start()

    # -- logs ---------------------------------------------------------------------------------------

    def all_log_lines(self) -> Iterator[tuple[str, str]]:
        for name, lines in self.logs.items():
            for line in list(lines):
                yield name, line
        for line in self.launcher_log:
            yield "launcher", line

    def find_in_logs(self, needles: Mapping[str, str]) -> list[str]:
        """Lines (service, which needle) where any of the secret needles appears."""
        hits = []
        for service, line in self.all_log_lines():
            for label, needle in needles.items():
                if needle and needle in line:
                    hits.append(f"{service}: {label} in {line[:300]}")
        return hits


def client(base: str, token: str | None = None, **headers: str) -> httpx.Client:
    hdrs = dict(headers)
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    return httpx.Client(base_url=base, headers=hdrs, timeout=30.0)


def poll(what: str, fn: Any, *, timeout: float = 30.0, interval: float = 0.3) -> Any:
    """Call fn until it returns something truthy; fail with the last value after a generous deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = fn()
        except (httpx.HTTPError, AssertionError) as exc:  # not there yet / service restarting
            last = exc
        if last and not isinstance(last, Exception):
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


class WebhookInbox:
    """A loopback HTTP endpoint that records every JSON body POSTed to it (survey sends, notifications)."""

    def __init__(self) -> None:
        import json
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received: list[dict[str, Any]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    received.append({"path": self.path, "headers": dict(self.headers), "json": json.loads(body)})
                except ValueError:
                    received.append({"path": self.path, "headers": dict(self.headers), "raw": body})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
