"""App factory of the survey service."""

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from starlette.responses import Response

from cx_common.app import create_service_app
from cx_common.errors import problem_response
from cx_survey.audit.views import router as audit_router
from cx_survey.distributions.flows import start_scheduler, stop_scheduler
from cx_survey.distributions.views import router as distributions_router
from cx_survey.journeys.views import router as journeys_router
from cx_survey.orgs.consumers import consumers
from cx_survey.respondent.views import router as respondent_router
from cx_survey.responses.views import public as public_router
from cx_survey.responses.views import router as responses_router
from cx_survey.settings import Settings, get_settings
from cx_survey.surveys.views import router as surveys_router


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = create_service_app(
        settings,
        title="CX survey service",
        description="Versioned surveys, journeys and touchpoints, distributions, respondent page and responses.",
        routers=[
            surveys_router,
            journeys_router,
            distributions_router,
            responses_router,
            public_router,
            respondent_router,
            audit_router,
        ],
        consumers=consumers,
        on_startup=[start_scheduler],
        on_shutdown=[stop_scheduler],
    )
    limit = settings.max_body_bytes

    @app.middleware("http")
    async def _body_limit(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return problem_response(413, f"body: payload larger than {limit} bytes", instance=request.url.path)
        return await call_next(request)

    return app
