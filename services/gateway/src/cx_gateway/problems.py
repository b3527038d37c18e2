"""Document the problem+json answers of every public route in the OpenAPI (generic: a candidate for cx_common).

FastAPI documents only the success status and its own 422 shape; our errors are RFC 9457 problem+json raised from
dependencies (401 bad token, 403 missing scope, 404 out of scope, 429 rate limit...) and would be "undocumented"."""

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
    422: "Validation failed; `errors` name each field",
    429: "Rate limited; see Retry-After",
    502: "The owning service failed or is unreachable",
    504: "The owning service did not answer in time",
}


def problem_response(status: int) -> dict[str, Any]:
    return {
        "description": DESCRIPTIONS.get(status, "Problem"),
        "content": {"application/problem+json": {"schema": PROBLEM_SCHEMA}},
    }


def document_problems(
    app: FastAPI,
    *,
    prefix: str = "/api/v1",
    statuses: tuple[int, ...] = (400, 401, 403, 404, 409, 422, 429),
    upstream_prefixes: tuple[str, ...] = (),
) -> None:
    """Add the problem answers to every operation under `prefix` of the generated OpenAPI document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        for path, operations in schema.get("paths", {}).items():
            if not path.startswith(prefix):
                continue
            extra = (502, 504) if upstream_prefixes and path.startswith(upstream_prefixes) else ()
            for operation in operations.values():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                for status in (*statuses, *extra):
                    operation["responses"][str(status)] = problem_response(status)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
