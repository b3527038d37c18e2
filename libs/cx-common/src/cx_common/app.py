"""Service app factory: logging, problem+json, health/metrics, DB engine, NATS bus, outbox relay, consumers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cx_common.auth import JWTVerifier
from cx_common.bodylimit import BodySizeLimitMiddleware
from cx_common.db import create_engine, ping, session_factory
from cx_common.errors import Problem, install_problem_handlers
from cx_common.events import EventBus, EventConsumer, OutboxRelay
from cx_common.gctune import tune_gc
from cx_common.logging import configure_logging, get_logger
from cx_common.observability import ReadinessCheck, install_observability
from cx_common.openapi import document_problems
from cx_common.settings import ServiceSettings
from cx_common.textguard import TextGuardMiddleware

log = get_logger(__name__)


@dataclass
class Runtime:
    """What a running service holds; lives on `app.state.runtime`."""

    settings: ServiceSettings
    engine: AsyncEngine | None = None
    sessions: async_sessionmaker[AsyncSession] | None = None
    bus: EventBus | None = None
    relay: OutboxRelay | None = None
    consumers: list[EventConsumer] = field(default_factory=list)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        task.add_done_callback(_log_task_end)
        self.tasks.append(task)
        return task


def _log_task_end(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background_task_failed", task=task.get_name(), error=repr(task.exception()))


ConsumerFactory = Callable[[Runtime], Sequence[EventConsumer]]
Hook = Callable[[Runtime], Awaitable[None]]


async def _connect_bus(settings: ServiceSettings, attempts: int = 30) -> EventBus:
    assert settings.nats_url
    for attempt in range(1, attempts + 1):
        try:
            return await EventBus.connect(
                settings.nats_url,
                name=settings.service_name,
                stream=settings.events_stream,
                subject_prefix=settings.events_subject_prefix,
            )
        except Exception as exc:
            if attempt == attempts:
                raise
            log.warning("nats_connect_retry", attempt=attempt, error=str(exc))
            await asyncio.sleep(min(2.0, 0.2 * attempt))
    raise AssertionError("unreachable")


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    version: str = "0.1.0",
    routers: Sequence[APIRouter] = (),
    consumers: ConsumerFactory | None = None,
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    extra_checks: dict[str, ReadinessCheck] | None = None,
    run_relay: bool = True,
    api_prefix: str = "/v1",
    api_problem_extra: dict[str, tuple[int, ...]] | None = None,
    text_guard_exempt: Sequence[str] = (),
) -> FastAPI:
    """`api_prefix`: the operations under it get their problem+json answers documented (cx_common.openapi), plus
    `api_problem_extra` (path prefix → more statuses, e.g. 502/504 on forwarded routes). `text_guard_exempt`: path
    patterns whose handlers reject unstorable text themselves (`TextGuardMiddleware`)."""
    configure_logging(settings.service_name, level=settings.log_level, json=settings.log_json)
    runtime = Runtime(settings=settings)
    checks: dict[str, ReadinessCheck] = {}

    if settings.database_url:
        runtime.engine = create_engine(
            settings.database_url,
            settings.db_schema,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
        )
        runtime.sessions = session_factory(runtime.engine)
        engine = runtime.engine

        async def _db() -> None:
            await ping(engine)

        checks["database"] = _db

    if settings.nats_url:

        async def _nats() -> None:
            if runtime.bus is None or not runtime.bus.connected:
                raise RuntimeError("not connected")

        checks["nats"] = _nats
    checks.update(extra_checks or {})

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.jwt_jwks_url:
            app.state.jwt_verifier = JWTVerifier(
                issuer=settings.jwt_issuer, audience=settings.jwt_audience, jwks_url=settings.jwt_jwks_url
            )
        if settings.nats_url:
            runtime.bus = await _connect_bus(settings)
            if run_relay and runtime.engine is not None:
                runtime.relay = OutboxRelay(
                    runtime.engine,
                    runtime.bus,
                    schema=settings.db_schema,
                    database_url=settings.database_url if settings.outbox_listen else None,
                    poll_interval=settings.outbox_poll_interval,
                )
                runtime.spawn(runtime.relay.run(), "outbox-relay")
            if consumers is not None:
                runtime.consumers = list(consumers(runtime))
                for consumer in runtime.consumers:
                    runtime.spawn(consumer.run(), f"consumer-{consumer.durable}")
        for hook in on_startup:
            await hook(runtime)
        if settings.gc_tuning:
            tune_gc()
        log.info("service_started", service=settings.service_name, port=settings.port)
        try:
            yield
        finally:
            for hook in on_shutdown:
                with contextlib.suppress(Exception):
                    await hook(runtime)
            for consumer in runtime.consumers:
                consumer.stop()
            if runtime.relay is not None:
                runtime.relay.stop()
            if runtime.tasks:
                _, pending = await asyncio.wait(runtime.tasks, timeout=5.0)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
            if runtime.bus is not None:
                with contextlib.suppress(Exception):
                    await runtime.bus.close()
            if runtime.engine is not None:
                await runtime.engine.dispose()
            log.info("service_stopped", service=settings.service_name)

    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan)
    app.state.runtime = runtime
    app.state.settings = settings
    install_problem_handlers(app)
    # inside the size limit: it reads only bodies already bounded
    app.add_middleware(TextGuardMiddleware, exempt_paths=text_guard_exempt)
    app.add_middleware(
        BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes, max_upload_bytes=settings.max_upload_bytes
    )
    install_observability(app, settings.service_name, checks)
    for router in routers:
        app.include_router(router)
    document_problems(app, prefix=api_prefix, extra=api_problem_extra)
    return app


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session per request; endpoints commit explicitly (uncommitted work is rolled back)."""
    runtime = get_runtime(request)
    if runtime.sessions is None:
        raise Problem(503, "database is not configured")
    async with runtime.sessions() as session:
        yield session


async def _runtime_dependency(request: Request) -> Runtime:
    # async on purpose: FastAPI runs a plain `def` dependency in its thread pool, two thread hand-offs per request
    return get_runtime(request)


RuntimeDep = Annotated[Runtime, Depends(_runtime_dependency)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
