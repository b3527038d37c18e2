"""Text Postgres cannot store (NUL, unpaired surrogates) is refused with 422 naming the field; other text passes."""

from __future__ import annotations

import json

import httpx
from fastapi import FastAPI, Request

from cx_common.errors import install_problem_handlers
from cx_common.textguard import TextGuardMiddleware


def _app(exempt: tuple[str, ...] = ()) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, object]:
        return {"body": (await request.body()).decode()}

    @app.get("/search")
    async def search(q: str = "") -> dict[str, str]:
        return {"q": q}

    app.add_middleware(TextGuardMiddleware, exempt_paths=exempt)
    return app


async def _post(client: httpx.AsyncClient, raw: str, content_type: str = "application/json") -> httpx.Response:
    return await client.post("/echo", content=raw.encode(), headers={"content-type": content_type})


async def test_refuses_nul_and_lone_surrogates_naming_the_field() -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://t") as client:
        nul = await _post(client, '{"unit": {"name": "a\\u0000b"}}')
        assert nul.status_code == 422
        assert nul.headers["content-type"].startswith("application/problem+json")
        assert nul.json()["detail"].startswith("unit.name: must not contain the NUL character")
        assert nul.json()["errors"][0]["field"] == "unit.name"
        lone = await _post(client, '{"tags": ["ok", "x\\udee9y"]}')
        assert lone.status_code == 422 and lone.json()["errors"][0]["field"] == "tags.1"
        key = await _post(client, '{"a\\u0000": 1}')
        assert key.status_code == 422 and "field name" in key.json()["detail"]
        form = await _post(client, "name=ok&comment=a%00b", "application/x-www-form-urlencoded")
        assert form.status_code == 422 and form.json()["errors"][0]["field"] == "comment"
        query = await client.get("/search", params={"q": "a\x00b"})
        assert query.status_code == 422 and query.json()["errors"][0]["field"] == "q"


async def test_ordinary_text_emoji_and_escaped_chinese_pass_unchanged() -> None:
    body = json.dumps({"text": "排队太久 😀", "n": 1})  # ensure_ascii: \\u6392… and a surrogate pair for the emoji
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://t") as client:
        ok = await _post(client, body)
        assert ok.status_code == 200 and ok.json()["body"] == body
        malformed = await _post(client, '{"text": "a\\u0000')  # not JSON: left to the framework's own 422
        assert malformed.status_code == 200  # this endpoint reads raw bytes, so nothing here rejects it
        assert (await client.get("/search", params={"q": "门店"})).json() == {"q": "门店"}


async def test_exempt_paths_reach_their_handler() -> None:
    """A handler that rejects such text itself (per record of a batch) gets the body as sent."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app((r"/ec\w+",))), base_url="http://t") as c:
        passed = await _post(c, '{"text": "a\\u0000b"}')
        assert passed.status_code == 200 and passed.json()["body"] == '{"text": "a\\u0000b"}'
        refused = await c.get("/search", params={"q": "a\x00b"})  # only the listed paths are exempt
        assert refused.status_code == 422
