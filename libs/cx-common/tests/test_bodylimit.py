"""Oversized bodies get 413 problem+json, whether announced by Content-Length or streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI, Request

from cx_common.bodylimit import BodySizeLimitMiddleware


def _app() -> FastAPI:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    app.add_middleware(BodySizeLimitMiddleware, max_bytes=1000, max_upload_bytes=5000)
    return app


async def _chunks(total: int) -> AsyncIterator[bytes]:
    for _ in range(total // 100):
        yield b"x" * 100


async def test_body_limits() -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://t") as client:
        assert (await client.post("/echo", content=b"x" * 1000)).json() == {"size": 1000}
        refused = await client.post("/echo", content=b"x" * 1001)
        assert refused.status_code == 413
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert "body" in refused.json()["detail"]
        streamed = await client.post("/echo", content=_chunks(3000))  # chunked: no Content-Length
        assert streamed.status_code == 413
        assert (await client.post("/echo", content=_chunks(900))).json() == {"size": 900}
        upload = await client.post("/echo", files={"file": ("a.csv", b"y" * 3000)})
        assert upload.status_code == 200
        too_big = await client.post("/echo", files={"file": ("a.csv", b"y" * 6000)})
        assert too_big.status_code == 413
