import httpx
from fastapi import FastAPI, Request

from cx_common.context import bind_request_context
from cx_common.http import internal_client


async def test_ids_propagate_to_upstream():
    upstream = FastAPI()

    @upstream.get("/echo")
    async def echo(request: Request) -> dict[str, str]:
        return {k: v for k, v in request.headers.items() if k in ("x-request-id", "traceparent")}

    bind_request_context(request_id="rid-42", trace_id="b" * 32)
    async with internal_client("http://up", transport=httpx.ASGITransport(app=upstream)) as client:
        seen = (await client.get("/echo")).json()
        explicit = (await client.get("/echo", headers={"x-request-id": "mine"})).json()
    assert seen["x-request-id"] == "rid-42"
    assert seen["traceparent"].split("-")[1] == "b" * 32
    assert explicit["x-request-id"] == "mine"
