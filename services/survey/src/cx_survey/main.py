"""App factory of the survey service."""

from fastapi import FastAPI

from cx_common.app import create_service_app
from cx_survey.settings import Settings, get_settings
from cx_survey.surveys.views import router as surveys_router


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings or get_settings(),
        title="CX survey service",
        description="Versioned surveys, journeys and touchpoints, distributions, respondent page and responses.",
        routers=[surveys_router],
    )
