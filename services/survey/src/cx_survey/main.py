"""App factory of the survey service."""

from collections.abc import Sequence

from fastapi import FastAPI

from cx_common.app import Runtime, create_service_app
from cx_common.events import EventConsumer
from cx_survey.audit.views import router as audit_router
from cx_survey.distributions.flows import start_scheduler, stop_scheduler
from cx_survey.distributions.views import router as distributions_router
from cx_survey.followups.consumers import consumers as follow_up_consumers
from cx_survey.followups.views import router as follow_ups_router
from cx_survey.journeys.views import router as journeys_router
from cx_survey.orgs.consumers import consumers as org_consumers
from cx_survey.pg import close_pool, open_pool
from cx_survey.respondent.ratelimit import PublicRateLimit
from cx_survey.respondent.views import router as respondent_router
from cx_survey.responses.submission import close_submissions
from cx_survey.responses.views import public as public_router
from cx_survey.responses.views import router as responses_router
from cx_survey.responses.views import submit_route
from cx_survey.settings import Settings, get_settings
from cx_survey.surveys.views import router as surveys_router


def consumers(runtime: Runtime) -> Sequence[EventConsumer]:
    return [*org_consumers(runtime), *follow_up_consumers(runtime)]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = create_service_app(
        settings,
        title="CX survey service",
        description="Versioned surveys, journeys and touchpoints, distributions, respondent page and responses.",
        # The respondents' routers first: routes are matched in order, and theirs carry the traffic.
        routers=[
            public_router,
            respondent_router,
            surveys_router,
            journeys_router,
            follow_ups_router,
            distributions_router,
            responses_router,
            audit_router,
        ],
        consumers=consumers,
        on_startup=[open_pool, start_scheduler],
        on_shutdown=[stop_scheduler, close_submissions, close_pool],
    )
    app.router.routes.insert(0, submit_route())
    # The 413 body limit is cx_common's (settings.max_body_bytes); public endpoints are rate limited per address+link.
    app.add_middleware(
        PublicRateLimit,
        per_minute=settings.public_rate_per_minute,
        burst=settings.public_rate_burst,
        address_factor=settings.public_rate_address_factor,
        trust_forwarded=settings.trust_forwarded_for,
    )
    return app
