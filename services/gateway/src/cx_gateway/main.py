"""App factory of the gateway service."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse

from cx.nlp.v1 import nlp_pb2_grpc
from cx_common.app import Runtime, create_service_app
from cx_common.events import BatchEventConsumer, EventConsumer
from cx_common.grpc import insecure_channel
from cx_gateway.analytics.projection import EVENT_TYPES, apply_batch, handle
from cx_gateway.analytics.views import competitor_router, kpi_router
from cx_gateway.analytics.views import router as analytics_router
from cx_gateway.console.pages import router as console_pages_router
from cx_gateway.console.views import LoginRequired, redirect_to_login, static_app
from cx_gateway.console.views import router as console_router
from cx_gateway.identity.keys import KeyRing, LocalJWTVerifier
from cx_gateway.identity.secrets import configure_hasher
from cx_gateway.identity.views import auth_router, platform_router, users_router
from cx_gateway.nlp.views import router as nlp_router
from cx_gateway.org.views import router as org_router
from cx_gateway.proxy.client import Upstreams
from cx_gateway.proxy.routes import ROUTES
from cx_gateway.proxy.views import router as proxy_router
from cx_gateway.ratelimit import RateLimitMiddleware
from cx_gateway.settings import Settings, get_settings

# routes answered by another service (502/504 when it fails); the NLP playground goes to nlp over gRPC
UPSTREAM_PREFIXES = (*(f"/api/v1/{r.resource}" for r in ROUTES), "/api/v1/nlp/")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_hasher(
        time_cost=settings.password_time_cost,
        memory_cost_kib=settings.password_memory_kib,
        parallelism=settings.password_parallelism,
    )
    app: FastAPI

    async def start(runtime: Runtime) -> None:
        assert runtime.sessions is not None, "the gateway needs a database"
        ring = KeyRing(runtime.sessions, settings)
        await ring.active()  # creates (or rotates) the signing key at start
        runtime.extras["keyring"] = ring
        app.state.jwt_verifier = LocalJWTVerifier(ring, issuer=settings.jwt_issuer, audience=settings.jwt_audience)
        runtime.extras["upstreams"] = Upstreams(settings)
        channel = insecure_channel(settings.nlp_grpc_target, default_timeout=settings.nlp_timeout_s)
        runtime.extras["nlp_channel"] = channel
        runtime.extras["nlp_stub"] = nlp_pb2_grpc.NlpServiceStub(channel)

    async def stop(runtime: Runtime) -> None:
        if (upstreams := runtime.extras.get("upstreams")) is not None:
            await upstreams.close()
        if (channel := runtime.extras.get("nlp_channel")) is not None:
            await channel.close()

    def consumers(runtime: Runtime) -> list[EventConsumer]:
        assert runtime.bus is not None
        assert runtime.sessions is not None
        return [
            # one transaction per fetched batch: per-event transactions lose freshness under load
            BatchEventConsumer(
                runtime.bus,
                runtime.sessions,
                durable="gateway-analytics",
                event_types=EVENT_TYPES,
                handler=handle,
                batch_handler=apply_batch,
                batch_size=settings.analytics_batch_size,
            )
        ]

    app = create_service_app(
        settings,
        title="CX gateway service",
        description=(
            "Public API `/api/v1` for frontend apps and the web console: identity (login, refresh, JWKS, API tokens), "
            "org hierarchy with data scoping, resources forwarded to the owning services, analytics read model."
        ),
        routers=[
            auth_router,
            platform_router,
            users_router,
            org_router,
            analytics_router,
            kpi_router,
            competitor_router,
            nlp_router,
            proxy_router,
            console_pages_router,  # before the list pages: /console/<page>/<id>/<action> is theirs otherwise
            console_router,
        ],
        consumers=consumers,
        on_startup=[start],
        on_shutdown=[stop],
        api_prefix="/api/v1",
        api_problem_extra={prefix: (502, 504) for prefix in UPSTREAM_PREFIXES},
    )
    app.mount("/console/static", static_app, name="console-static")
    app.add_exception_handler(LoginRequired, redirect_to_login)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console")

    app.add_middleware(
        RateLimitMiddleware,
        per_minute=settings.rate_limit_per_minute,
        burst=settings.rate_limit_burst,
        exempt=("/api/v1/auth/jwks",),
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["Retry-After", "Location", "ETag", "X-Request-Id"],
        )
    return app
