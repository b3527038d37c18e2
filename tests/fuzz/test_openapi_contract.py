"""Every service documents the problem+json answers its operations give, so that clients (and schemathesis'
status-code check) know them: 401/403 wherever credentials are needed, 404 wherever a path names a resource, 422
wherever input is validated. Read from each app's generated OpenAPI document (no server needed)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from cx_local.pytest_plugin import offline_app

PUBLIC = re.compile(r"^/(healthz|readyz|metrics|s/|v1/public/|api/v1/auth/(login|refresh|jwks|sso|oidc))")
METHODS = ("get", "post", "put", "patch", "delete")


def openapi(service: str) -> dict[str, Any]:
    spec: dict[str, Any] = offline_app(service).openapi()
    return spec


def missing_answers(spec: dict[str, Any]) -> list[str]:
    missing = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if method not in METHODS:
                continue
            documented = set(op.get("responses", {}))
            needed = set()
            if not PUBLIC.match(path):
                needed |= {"401", "403"}
            if "{" in path:
                needed.add("404")
            if op.get("parameters") or op.get("requestBody"):
                needed.add("422")
            if lacking := sorted(needed - documented):
                missing.append(f"{method.upper()} {path}: {','.join(lacking)}")
    return missing


@pytest.mark.parametrize(
    "service",
    [
        "gateway",
        "survey",
        "ingest",
        "alerts",
    ],
)
def test_every_operation_documents_its_problem_answers(service: str) -> None:
    spec = openapi(service)
    assert len(spec["paths"]) > 10
    missing = missing_answers(spec)
    assert missing == [], f"{len(missing)} operations of {service} lack documented answers:\n" + "\n".join(missing)
