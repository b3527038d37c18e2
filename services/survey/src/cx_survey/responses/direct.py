"""The submit endpoint's route: documented by FastAPI like any other, its inputs read without the generic machinery.

FastAPI's generic request handler (dependency solving, per-parameter extraction and checks, then the response model)
costs about as much CPU per request as validating, scoring and storing a response does. The submit endpoint has four
fixed inputs, so its route reads them itself — the survey id from the path, the JSON body through the pydantic model
in one pass (`model_validate_json`), the Accept-Language header — and calls the endpoint with them. Bad input raises
`RequestValidationError` with FastAPI's error locations, so the answer is the same 422 problem+json naming the field;
the OpenAPI document still comes from the endpoint's signature.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from typing import Any, get_type_hints

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _body_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"type": e["type"], "loc": ("body", *e["loc"]), "msg": e["msg"], "input": e.get("input")} for e in exc.errors()
    ]


class SubmitRoute(APIRoute):
    """For endpoints `(survey_id: UUID, body: <model>, request: Request, accept_language: str | None)`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint
        body_model: type[BaseModel] = get_type_hints(endpoint)["body"]

        async def handler(request: Request) -> Response:
            raw_id = request.path_params["survey_id"]
            try:
                survey_id = uuid.UUID(raw_id)
            except ValueError:
                raise RequestValidationError(
                    [{"type": "uuid_parsing", "loc": ("path", "survey_id"), "msg": "not a UUID", "input": raw_id}]
                ) from None
            if not _is_json(request.headers.get("content-type")):
                raise RequestValidationError(
                    [{"type": "content_type", "loc": ("body",), "msg": "send a JSON object (application/json)"}]
                )
            try:
                body = body_model.model_validate_json(await request.body())
            except ValidationError as exc:
                raise RequestValidationError(_body_errors(exc)) from None
            response: Response = await endpoint(survey_id, body, request, request.headers.get("accept-language"))
            return response

        return handler
