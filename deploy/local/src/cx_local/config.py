"""Where local state lives and which ports the stack uses (each overridable by environment variable)."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

SERVICE_SCHEMAS = {"gateway": "gateway", "survey": "survey", "ingest": "ingest", "alerts": "alerts"}


def repo_root() -> Path:
    """The checkout this launcher belongs to (CX_HOME overrides)."""
    if home := os.environ.get("CX_HOME"):
        return Path(home).resolve()
    for start in (Path.cwd(), Path(__file__).resolve()):
        for candidate in (start, *start.parents):
            if (candidate / "deploy" / "local").is_dir() and (candidate / "services").is_dir():
                return candidate
    return Path.cwd()


def _port(name: str, default: int) -> int:
    return int(os.environ.get(f"CX_LOCAL_{name}_PORT", default))


@dataclass
class LocalConfig:
    root: Path = field(default_factory=repo_root)
    pg_port: int = field(default_factory=lambda: _port("PG", 55432))
    nats_port: int = field(default_factory=lambda: _port("NATS", 4222))
    nats_monitor_port: int = field(default_factory=lambda: _port("NATS_MONITOR", 8222))
    gateway_port: int = field(default_factory=lambda: _port("GATEWAY", 8000))
    survey_port: int = field(default_factory=lambda: _port("SURVEY", 8001))
    ingest_port: int = field(default_factory=lambda: _port("INGEST", 8002))
    alerts_port: int = field(default_factory=lambda: _port("ALERTS", 8003))
    nlp_http_port: int = field(default_factory=lambda: _port("NLP_HTTP", 3000))
    nlp_grpc_port: int = field(default_factory=lambda: _port("NLP_GRPC", 50051))
    external_database_url: str | None = field(default_factory=lambda: os.environ.get("CX_DATABASE_URL"))
    external_nats_url: str | None = field(default_factory=lambda: os.environ.get("CX_NATS_URL"))
    external_nlp_target: str | None = field(default_factory=lambda: os.environ.get("CX_NLP_GRPC_TARGET"))

    @property
    def state_dir(self) -> Path:
        return Path(os.environ.get("CX_STATE_DIR", self.root / ".cx")).resolve()

    @property
    def pg_dir(self) -> Path:
        return self.state_dir / "pg"

    @property
    def nats_dir(self) -> Path:
        return self.state_dir / "nats"

    @property
    def model_dir(self) -> Path:
        return Path(os.environ.get("CX_NLP_MODEL_DIR", self.state_dir / "models" / "default"))

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "cx-local.pid"

    @property
    def status_file(self) -> Path:
        return self.state_dir / "status.json"

    def service_passwords(self) -> dict[str, str]:
        """Per-service DB role passwords, generated once and kept in .cx/secrets.json (mode 600)."""
        path = self.state_dir / "secrets.json"
        data: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        changed = False
        for schema in SERVICE_SCHEMAS.values():
            if schema not in data:
                data[schema] = secrets.token_urlsafe(18)
                changed = True
        if changed:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(data, indent=2))
            path.chmod(0o600)
        return data
