"""The fuzz helper passes a well-behaved API and catches a server error."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel, Field

from cx_local.fuzz import fuzz_openapi
from cx_local.pytest_plugin import live_server


class Item(BaseModel):
    name: str = Field(min_length=1, max_length=20)
    qty: int = Field(ge=0, le=1000)


def _app(broken: bool) -> FastAPI:
    app = FastAPI()

    @app.post("/items", status_code=201)
    async def create(item: Item) -> Item:
        if broken and item.qty > 500:
            raise RuntimeError("boom")
        return item

    return app


async def test_clean_api_passes() -> None:
    async with live_server(_app(broken=False)) as url:
        result = await fuzz_openapi(url, max_examples=20, checks=("not_a_server_error",))
    assert result.ok, result.output[-3000:]


async def test_server_error_is_found() -> None:
    async with live_server(_app(broken=True)) as url:
        result = await fuzz_openapi(url, max_examples=50, checks=("not_a_server_error",))
    assert not result.ok
    assert "500" in result.output or "Server error" in result.output


async def test_a_run_past_its_deadline_keeps_what_schemathesis_printed() -> None:
    import asyncio

    app = FastAPI()

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        await asyncio.sleep(5)
        return {"ok": "yes"}

    async with live_server(app) as url:
        result = await fuzz_openapi(url, max_examples=5, checks=("not_a_server_error",), deadline_s=4)
    assert result.returncode == 124
    assert "ran past 4s" in result.output and "its output so far" in result.output
    assert "Schemathesis" in result.output or "openapi.json" in result.output, result.output
