"""App factory of the ingest service."""

from fastapi import FastAPI

from cx_common.app import create_service_app
from cx_ingest.partners.views import router as partners_router
from cx_ingest.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings or get_settings(),
        title="CX ingest service",
        description=(
            "Partner CRM API, omni-channel feedback and O-data, PII redaction, codebooks, NLP analysis pipeline."
        ),
        routers=[partners_router],
    )
