"""Problem+json errors for the BentoML HTTP service, as every other CX service answers them.

BentoML 1.4 answers a request its pydantic models reject with `{"error": "...", "detail": [pydantic errors]}` and an
`InvalidArgument` raised by a handler with a one-element JSON array, while its `/docs.json` documents both as an
object whose `detail` is a string. This ASGI middleware rewrites every JSON error body into RFC 9457 problem+json
(`detail` a sentence naming the fields, `errors` one entry per field, BentoML's `error` kept) and documents exactly
that shape for every error response in `/docs.json`.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cx_common.errors import PROBLEM_JSON
from cx_common.openapi import PROBLEM_SCHEMA

DOCS_PATH = "/docs.json"
MAX_DETAIL = 1000


def _field(loc: Any) -> str:
    return ".".join(str(part) for part in loc) if isinstance(loc, list | tuple) else str(loc or "")


def problem_from_bentoml(status: int, body: bytes) -> dict[str, Any]:
    """The problem for one of BentoML's error bodies (or Starlette's `{"detail": "..."}`)."""
    try:
        parsed: Any = json.loads(body) if body else {}
    except ValueError:
        parsed = {"error": body.decode("utf-8", "replace").strip()}
    if isinstance(parsed, list) and len(parsed) == 1:  # InvalidArgument & co: `({"error": str(exc)},)`
        parsed = parsed[0]
    if not isinstance(parsed, dict):
        parsed = {"error": str(parsed)}
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    problem: dict[str, Any] = {"type": "about:blank", "title": phrase, "status": status}
    error = parsed.get("error")
    raw = parsed.get("detail")
    if isinstance(raw, list):  # pydantic validation errors
        errors = [
            {"field": _field(e.get("loc")), "message": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in raw
            if isinstance(e, dict)
        ]
        problem["title"] = "Validation failed"
        problem["errors"] = errors
        if errors:
            problem["field"] = errors[0]["field"]
        detail = "; ".join(f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors)
    else:
        detail = str(raw) if raw else str(error or phrase)
    problem["detail"] = detail[:MAX_DETAIL] or phrase
    if error:
        problem["error"] = str(error)
    return problem


def document_problems(spec: dict[str, Any]) -> dict[str, Any]:
    """Every documented error response of every operation becomes problem+json."""
    for operations in spec.get("paths", {}).values():
        for operation in operations.values() if isinstance(operations, dict) else ():
            responses = operation.get("responses", {}) if isinstance(operation, dict) else {}
            for code, response in responses.items():
                if str(code).isdigit() and int(code) >= 400 and isinstance(response, dict):
                    response["content"] = {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}}
    return spec


class ProblemJsonMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_docs = scope.get("path") == DOCS_PATH
        held: Message | None = None
        body = bytearray()

        async def send_rewritten(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if (is_docs and status == 200) or status >= 400:
                    held = message
                    return
                await send(message)
                return
            if held is None or message["type"] != "http.response.body":
                await send(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body"):
                return
            status = int(held["status"])
            if is_docs and status == 200:
                content, media = json.dumps(document_problems(json.loads(body))).encode(), b"application/json"
            else:
                problem = problem_from_bentoml(status, bytes(body))
                content, media = json.dumps(problem, ensure_ascii=False).encode(), PROBLEM_JSON.encode()
            headers = [
                (k, v) for k, v in held.get("headers", []) if k.lower() not in (b"content-length", b"content-type")
            ]
            headers += [(b"content-type", media), (b"content-length", str(len(content)).encode())]
            await send({**held, "headers": headers})
            await send({"type": "http.response.body", "body": content})

        await self.app(scope, receive, send_rewritten)
