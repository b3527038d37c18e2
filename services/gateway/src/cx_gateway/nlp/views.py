from __future__ import annotations

from typing import Annotated, Any, Literal, cast

import grpc
from fastapi import APIRouter, Depends, Request
from google.protobuf.json_format import MessageToDict
from pydantic import BaseModel, Field

from cx.nlp.v1 import nlp_pb2, nlp_pb2_grpc
from cx_common.auth import Principal
from cx_common.errors import Problem
from cx_gateway.identity.deps import require
from cx_gateway.settings import Settings

router = APIRouter(prefix="/api/v1/nlp", tags=["nlp playground"])


class AnalyzeText(BaseModel):
    text: str = Field(min_length=1, max_length=10_000)
    language_hint: Literal["", "zh-Hans", "zh-Hant", "en"] = ""
    codebook_id: str | None = Field(default=None, max_length=64, description="a codebook registered with nlp")
    codebook_version: int | None = Field(default=None, ge=1)
    max_keywords: int = Field(default=10, ge=1, le=50)


_GRPC_TO_HTTP = {
    grpc.StatusCode.INVALID_ARGUMENT: 422,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.FAILED_PRECONDITION: 422,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


@router.post("/analyze", summary="Analyse one text: language, sentiment, aspects, intents, keywords, need layer")
async def analyze(
    body: AnalyzeText, request: Request, principal: Annotated[Principal, Depends(require("nlp:read"))]
) -> dict[str, object]:
    stub = cast(nlp_pb2_grpc.NlpServiceStub, request.app.state.runtime.extras["nlp_stub"])
    settings = cast(Settings, request.app.state.settings)
    message = nlp_pb2.AnalyzeRequest(
        items=[nlp_pb2.TextInput(id="playground", text=body.text, language_hint=body.language_hint)],
        max_keywords=body.max_keywords,
    )
    if body.codebook_id:
        message.codebook.CopyFrom(
            nlp_pb2.CodebookRef(
                tenant_id=str(principal.tenant_id), codebook_id=body.codebook_id, version=body.codebook_version or 0
            )
        )
    try:
        response: nlp_pb2.AnalyzeResponse = await stub.Analyze(message, timeout=settings.nlp_timeout_s)  # type: ignore[misc]
    except grpc.aio.AioRpcError as exc:
        status = _GRPC_TO_HTTP.get(exc.code(), 502)
        detail = exc.details() or exc.code().name
        field: dict[str, Any] = {}
        if status == 502:
            detail = f"the nlp service failed: {exc.code().name}"
        elif exc.code() == grpc.StatusCode.INVALID_ARGUMENT and detail.startswith("items[0].text"):
            # the one item is this request's `text`: name the field the caller sent
            field = {"field": "text"}
            detail = "text: " + detail.removeprefix("items[0].text").split(" (id=")[0].strip()
        raise Problem(status, detail, grpc_status=exc.code().name, **field) from exc
    if not response.results:
        raise Problem(502, "the nlp service returned no result")
    result = MessageToDict(
        response.results[0], preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    result["model_version"] = response.model_version
    return result
