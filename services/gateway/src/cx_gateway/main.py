"""App factory of the gateway service."""

from fastapi import FastAPI

from cx_common.app import create_service_app
from cx_gateway.org_units.views import router as org_units_router
from cx_gateway.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings or get_settings(),
        title="CX gateway service",
        description="Identity, org hierarchy, public API for apps and the console, analytics read model.",
        routers=[org_units_router],
    )
