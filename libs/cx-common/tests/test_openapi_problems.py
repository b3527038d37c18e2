"""Every operation under the prefix documents its problem+json answers; what a route documents itself is kept."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel

from cx_common.openapi import document_problems


class Thing(BaseModel):
    name: str


def _app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/things", status_code=201, responses={404: {"description": "unknown owner"}})
    async def create(thing: Thing) -> Thing:
        return thing

    @app.get("/v1/things/{thing_id}:ping", responses={409: {"model": Thing, "description": "the conflicting thing"}})
    async def ping(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    document_problems(app, prefix="/v1", extra={"/v1/things/": (502,)})
    return app


def test_problem_answers_are_documented_under_the_prefix_only() -> None:
    schema = _app().openapi()
    create = schema["paths"]["/v1/things"]["post"]["responses"]
    for status in ("400", "401", "403", "404", "409", "413", "422", "429"):
        assert "application/problem+json" in create[status]["content"], status
    assert create["404"]["description"] == "unknown owner"  # the route's own words stay
    assert "HTTPValidationError" not in str(create["422"])  # our handler answers 422 as problem+json
    ping = schema["paths"]["/v1/things/{thing_id}:ping"]["get"]["responses"]
    assert "application/json" in ping["409"]["content"]  # a documented model is kept as it is
    assert "502" in ping and "502" not in create
    assert set(schema["paths"]["/healthz"]["get"]["responses"]) == {"200"}
