"""App factory of the alerts service."""

from __future__ import annotations

import datetime as dt

from fastapi import FastAPI

from cx_alerts import consumers
from cx_alerts.alerts.views import router as alerts_router
from cx_alerts.audit.views import router as audit_router
from cx_alerts.clock import Clock, SystemClock
from cx_alerts.compliance.views import router as compliance_router
from cx_alerts.context import Ctx
from cx_alerts.notifications.dispatcher import Dispatcher, SmtpConfig
from cx_alerts.notifications.views import channels_router
from cx_alerts.notifications.views import router as notifications_router
from cx_alerts.org.views import router as org_router
from cx_alerts.rules.views import router as rules_router
from cx_alerts.settings import Settings, get_settings
from cx_alerts.sla.scheduler import Scheduler
from cx_alerts.sla.views import router as sla_router
from cx_alerts.tasks.views import router as tasks_router
from cx_alerts.tickets.views import router as tickets_router
from cx_common.app import Runtime, create_service_app


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    """`clock` is the test hook: pass a `ManualClock` to move time without sleeping."""
    settings = settings or get_settings()
    ctx = Ctx(clock=clock or SystemClock(settings.clock_offset_s), subject_prefix=settings.events_subject_prefix)

    async def start_scheduler(runtime: Runtime) -> None:
        if runtime.sessions is None:
            return
        if settings.scheduler_enabled:
            scheduler = Scheduler(
                runtime.sessions,
                ctx,
                poll_s=settings.scheduler_poll_s,
                retention=dt.timedelta(days=settings.signal_retention_days),
            )
            runtime.extras["scheduler"] = scheduler
            runtime.spawn(scheduler.run(), "sla-scheduler")

        if settings.dispatcher_enabled:
            smtp = (
                SmtpConfig(
                    host=settings.smtp_host,
                    port=settings.smtp_port,
                    sender=settings.smtp_from,
                    username=settings.smtp_username,
                    password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
                    starttls=settings.smtp_starttls,
                )
                if settings.smtp_host
                else None
            )
            dispatcher = Dispatcher(runtime.sessions, ctx, smtp=smtp, poll_s=settings.dispatcher_poll_s)
            runtime.extras["dispatcher"] = dispatcher
            runtime.spawn(dispatcher.run(), "notification-dispatcher")

    async def stop_scheduler(runtime: Runtime) -> None:
        for name in ("scheduler", "dispatcher"):
            worker = runtime.extras.get(name)
            if worker is not None:
                worker.stop()

    app = create_service_app(
        settings,
        title="CX alerts service",
        description="Alert rules, tickets with SLA and escalation, closed loop, improvement tasks, audit trail.",
        routers=[
            rules_router,
            alerts_router,
            tickets_router,
            sla_router,
            tasks_router,
            notifications_router,
            channels_router,
            compliance_router,
            audit_router,
            org_router,
        ],
        consumers=consumers.build,
        on_startup=[start_scheduler],
        on_shutdown=[stop_scheduler],
    )
    app.state.runtime.extras["ctx"] = ctx
    app.state.runtime.extras["clock"] = ctx.clock
    return app
