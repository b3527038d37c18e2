"""Document the RFC 9457 problem+json answers of every operation in a service's OpenAPI document.

FastAPI documents only the success status and its own 422 shape; our errors are problem+json raised from
dependencies and handlers (401 bad token, 403 missing scope, 404 out of scope, 409 state conflicts, 413 body limit,
429 rate limit…), so without this they would be "undocumented" to API clients and to schemathesis.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "trace_id": {"type": "string"},
        "field": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["title", "status"],
    "additionalProperties": True,
}

DESCRIPTIONS = {
    400: "Bad request (e.g. a cursor this API did not return)",
    401: "Missing, invalid or expired credentials",
    403: "The credentials lack a scope this operation needs",
    404: "Not found, or outside the caller's org scope",
    409: "Conflicts with the current state",
    410: "Gone (closed, expired or used up)",
    412: "Precondition failed: the resource changed since the version you sent",
    413: "Request body too large",
    422: "Validation failed; `errors` name each field",
    428: "Precondition required: send If-Match (or the version field) with the version you read",
    429: "Rate limited; see Retry-After",
    502: "The owning service failed or is unreachable",
    503: "A dependency is unavailable; retry later",
    504: "The owning service did not answer in time",
}
DEFAULT_STATUSES = (400, 401, 403, 404, 409, 413, 422, 429)
WRITE_STATUSES = (412, 428)  # optimistic locking on writes (If-Match / version)
WRITE_METHODS = ("post", "put", "patch", "delete")


def problem_response(status: int) -> dict[str, Any]:
    return {
        "description": DESCRIPTIONS.get(status, "Problem"),
        "content": {"application/problem+json": {"schema": PROBLEM_SCHEMA}},
    }


def _is_fastapi_validation(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return str(schema.get("$ref", "")).endswith("/HTTPValidationError")


def document_problems(
    app: FastAPI,
    *,
    prefix: str = "/v1",
    statuses: tuple[int, ...] = DEFAULT_STATUSES,
    extra: dict[str, tuple[int, ...]] | None = None,
) -> None:
    """Add the problem answers to every operation whose path starts with `prefix`. `extra` maps further path
    prefixes to more statuses (e.g. 502/504 on routes forwarded to another service). Responses an operation
    documents itself are kept, except FastAPI's default 422, which our handler answers as problem+json."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        for path, operations in schema.get("paths", {}).items():
            if not path.startswith(prefix):
                continue
            more = tuple(s for p, codes in (extra or {}).items() if path.startswith(p) for s in codes)
            for method, operation in operations.items():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                responses: dict[str, Any] = operation["responses"]
                writes = WRITE_STATUSES if method in WRITE_METHODS else ()
                for status in (*statuses, *writes, *more):
                    current = responses.get(str(status))
                    if current is None or "content" not in current or _is_fastapi_validation(current):
                        described = problem_response(status)
                        if current and current.get("description"):
                            described["description"] = current["description"]
                        responses[str(status)] = described
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
