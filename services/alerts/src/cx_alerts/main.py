"""App factory of the alerts service."""

from fastapi import FastAPI

from cx_alerts.rules.views import router as rules_router
from cx_alerts.settings import Settings, get_settings
from cx_common.app import create_service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings or get_settings(),
        title="CX alerts service",
        description="Alert rules, tickets with SLA and escalation, closed loop, improvement tasks, audit trail.",
        routers=[rules_router],
    )
