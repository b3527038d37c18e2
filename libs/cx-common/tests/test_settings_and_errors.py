import json
import logging
import uuid

import httpx
import pytest
import structlog
from fastapi import FastAPI
from pydantic import BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict

from cx_common.context import bind_request_context, trace_id_from_traceparent
from cx_common.errors import Problem, install_problem_handlers
from cx_common.logging import configure_logging, get_logger
from cx_common.observability import install_observability
from cx_common.pagination import clamp_limit, cursor_uuid, cursor_value, decode_cursor, encode_cursor
from cx_common.settings import DEV_SECRET, ServiceSettings


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CX_DEMO_", extra="ignore")
    signing_key: SecretStr = SecretStr(DEV_SECRET)


def test_default_secrets_refused_in_prod(monkeypatch):
    monkeypatch.setenv("CX_DEMO_ENVIRONMENT", "prod")
    with pytest.raises(ValidationError, match="CX_DEMO_INTERNAL_SECRET must be set"):
        DemoSettings()
    monkeypatch.setenv("CX_DEMO_INTERNAL_SECRET", "real-secret-1")
    monkeypatch.setenv("CX_DEMO_SIGNING_KEY", "real-secret-2")
    assert DemoSettings().environment == "prod"


def test_dev_defaults_and_platform_fallbacks(monkeypatch):
    monkeypatch.setenv("CX_DATABASE_URL", "postgresql://u:p@db/cx")
    monkeypatch.setenv("CX_NATS_URL", "nats://n:4222")
    settings = DemoSettings()
    assert settings.is_dev
    assert settings.database_url == "postgresql://u:p@db/cx"
    assert settings.nats_url == "nats://n:4222"
    monkeypatch.setenv("CX_DEMO_DATABASE_URL", "postgresql://own@db/cx")
    assert DemoSettings().database_url == "postgresql://own@db/cx"


class Item(BaseModel):
    name: str = Field(min_length=2)
    qty: int = Field(ge=1)


@pytest.fixture
async def client():
    app = FastAPI()
    install_problem_handlers(app)
    install_observability(app, "demo")

    @app.post("/items")
    async def create(item: Item) -> Item:
        return item

    @app.get("/teapot")
    async def teapot() -> None:
        raise Problem(418, "short and stout", code="teapot")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


async def test_validation_problem_names_the_field(client):
    response = await client.post("/items", json={"name": "ok", "qty": 0})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["errors"] == [
        {"field": "qty", "message": "Input should be greater than or equal to 1", "type": "greater_than_equal"}
    ]
    assert body["detail"] == "qty: Input should be greater than or equal to 1"
    assert body["instance"] == "/items"


async def test_problem_exception_and_404_and_500(client):
    teapot = await client.get("/teapot")
    assert teapot.status_code == 418
    assert teapot.json()["code"] == "teapot"
    missing = await client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.json()["title"] == "Not Found"
    boom = await client.get("/boom")
    assert boom.status_code == 500
    assert "secret" not in boom.text


async def test_request_and_trace_ids_propagate(client):
    trace = "0af7651916cd43dd8448eb211c80319c"
    response = await client.get(
        "/teapot", headers={"x-request-id": "req-123", "traceparent": f"00-{trace}-b7ad6b7169203331-01"}
    )
    assert response.headers["x-request-id"] == "req-123"
    assert response.json()["trace_id"] == trace
    fresh = await client.get("/teapot")
    assert len(fresh.headers["x-request-id"]) == 24


def test_traceparent_parsing():
    assert trace_id_from_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01") == (
        "0af7651916cd43dd8448eb211c80319c"
    )
    assert trace_id_from_traceparent("garbage") is None
    assert trace_id_from_traceparent("00-00000000000000000000000000000000-b7ad6b7169203331-01") is None


async def test_health_ready_metrics():
    app = FastAPI()

    async def failing() -> None:
        raise ConnectionError("db down")

    install_observability(app, "demo", {"database": failing})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/healthz")).status_code == 200
        ready = await c.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"].startswith("fail: ConnectionError")
        assert "cx_http_requests_total" in (await c.get("/metrics")).text


def test_cursor_roundtrip_and_bad_cursor():
    cursor = encode_cursor({"id": str(uuid.UUID(int=5)), "at": "2026-01-01"})
    assert decode_cursor(cursor) == {"id": str(uuid.UUID(int=5)), "at": "2026-01-01"}
    assert decode_cursor(None) is None
    with pytest.raises(Problem) as info:
        decode_cursor("!!not-a-cursor!!")
    assert info.value.status == 400
    assert cursor_uuid(cursor) == uuid.UUID(int=5)
    assert cursor_uuid(None) is None
    assert cursor_value(encode_cursor({"id": 41}), int) == 41
    for tampered in ({"id": "not-a-uuid"}, {"at": "2026-01-01"}, {"id": None}):  # decodes, but not ours
        with pytest.raises(Problem) as info:
            cursor_uuid(encode_cursor(tampered))
        assert info.value.status == 400
    assert clamp_limit(None) == 50
    assert clamp_limit(10_000) == 500


def test_json_logs_carry_service_and_ids(capsys):
    configure_logging("demo", level="INFO", json=True)
    structlog.contextvars.clear_contextvars()
    bind_request_context(request_id="rid-1", trace_id="t" * 32)
    get_logger("x").info("hello", answer=42, text="你好")
    logging.getLogger("stdlib").warning("from stdlib")
    lines = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    assert lines[0]["event"] == "hello"
    assert lines[0]["service"] == "demo"
    assert lines[0]["request_id"] == "rid-1"
    assert lines[0]["text"] == "你好"
    assert lines[1]["event"] == "from stdlib"
    assert lines[1]["trace_id"] == "t" * 32
    structlog.contextvars.clear_contextvars()
