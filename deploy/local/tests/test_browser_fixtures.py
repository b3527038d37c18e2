"""The browser fixtures drive a real headless Chromium against an app served on a real socket."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from cx_local.pytest_plugin import live_server


def _app() -> FastAPI:
    app = FastAPI()
    clicks: list[int] = []

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return (
            "<!doctype html><html lang='zh-Hans'><body><button id=b "
            "onclick=\"fetch('/click',{method:'POST'}).then(r=>r.text()).then(t=>document.body.dataset.n=t)\">"
            "点我</button></body></html>"
        )

    @app.post("/click")
    async def click() -> int:
        clicks.append(1)
        return len(clicks)

    return app


async def test_browser_clicks_a_live_server(cx_browser: object, cx_artifacts: Path) -> None:
    async with live_server(_app()) as base_url:
        page = await cx_browser.new_page()  # type: ignore[attr-defined]
        await page.goto(base_url)
        await page.get_by_role("button", name="点我").click()
        await page.wait_for_function("document.body.dataset.n === '1'")
        await page.screenshot(path=str(cx_artifacts / "clicked.png"))
    assert (cx_artifacts / "clicked.png").stat().st_size > 0
