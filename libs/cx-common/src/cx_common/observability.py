"""/healthz, /readyz, /metrics and a request middleware (ids, access log, Prometheus)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cx_common.context import REQUEST_ID_HEADER, bind_request_context, trace_id_from_traceparent
from cx_common.logging import get_logger

log = get_logger("cx.access")

ReadinessCheck = Callable[[], Awaitable[None]]

HTTP_REQUESTS = Counter("cx_http_requests_total", "HTTP requests", ["service", "method", "route", "status"])
HTTP_LATENCY = Histogram(
    "cx_http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
_QUIET_PATHS = {"/healthz", "/readyz", "/metrics"}


class RequestContextMiddleware:
    """Binds request/trace ids (from headers or new), echoes X-Request-ID, logs and measures each request."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        structlog.contextvars.clear_contextvars()
        request_id, _ = bind_request_context(
            request_id=headers.get(REQUEST_ID_HEADER) or None,
            trace_id=trace_id_from_traceparent(headers.get("traceparent")),
        )
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"].append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            route_path = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            HTTP_REQUESTS.labels(self.service, method, route_path, str(status)).inc()
            HTTP_LATENCY.labels(self.service, method, route_path).observe(elapsed)
            path = scope.get("path", "")
            if path not in _QUIET_PATHS:
                log.info(
                    "http_request",
                    method=method,
                    path=path,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )


def health_router(checks: dict[str, ReadinessCheck] | None = None, *, timeout: float = 2.0) -> APIRouter:
    router = APIRouter(tags=["ops"])
    readiness = checks if checks is not None else {}

    @router.get("/healthz", summary="Liveness: the process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="Readiness: dependencies reachable", responses={503: {"description": "not ready"}})
    async def readyz() -> JSONResponse:
        results: dict[str, str] = {}
        ready = True
        for name, check in readiness.items():
            try:
                await asyncio.wait_for(check(), timeout=timeout)
                results[name] = "ok"
            except Exception as exc:
                ready = False
                results[name] = f"fail: {exc.__class__.__name__}: {exc}"[:200]
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": results}, status_code=200 if ready else 503
        )

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def install_observability(app: FastAPI, service: str, checks: dict[str, ReadinessCheck] | None = None) -> None:
    app.add_middleware(RequestContextMiddleware, service=service)
    app.include_router(health_router(checks))
