"""The two peers of the survey-submit benchmark, served by uvicorn like our service (`--factory`).

Both write what our service writes for a complete response: the response row (answers as JSONB, NPS score) and an
outbox row for `survey.response.submitted`, in one transaction, after checking that the survey is published — into the
very same tables (the survey schema, as the survey role), configured by `BENCH_SURVEY_DATABASE_URL`.

- naive: FastAPI + async SQLAlchemy ORM as the tutorials write it: a session per request (default settings), `get`
  the survey, select the version, `add` the ORM objects, `commit`, `refresh`, return the ORM object through
  `response_model` — with 20 pooled connections like the others (no overflow connections opened and closed).
- ceiling: hand-written Starlette + asyncpg: one pooled connection, one joined lookup, two INSERTs in a transaction,
  a hand-built JSON answer. No validation beyond the NPS range, no logging, no metrics.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict
from sqlalchemy import DateTime, Integer, LargeBinary, String, Text, select
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

SUBJECT = "cx.survey.response.submitted"
EVENT_TYPE = "survey.response.submitted"


def _url(driver: str) -> str:
    url = os.environ["BENCH_SURVEY_DATABASE_URL"]
    return url.replace("postgresql://", f"postgresql+{driver}://", 1) if driver else url


def _category(nps: int | None) -> str | None:
    if nps is None:
        return None
    return "promoter" if nps >= 9 else "passive" if nps >= 7 else "detractor"


# -- naive: FastAPI + async SQLAlchemy ORM ----------------------------------------------------------------------------


class Base(DeclarativeBase):
    pass


class SurveyRow(Base):
    __tablename__ = "surveys"
    __table_args__ = ({"schema": "survey"},)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tenant_id: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(String(16))
    current_version: Mapped[int | None] = mapped_column(Integer)


class VersionRow(Base):
    __tablename__ = "survey_versions"
    __table_args__ = ({"schema": "survey"},)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    survey_id: Mapped[uuid.UUID]
    version: Mapped[int] = mapped_column(Integer)


class ResponseRow(Base):
    __tablename__ = "responses"
    __table_args__ = ({"schema": "survey"},)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID]
    survey_id: Mapped[uuid.UUID]
    version: Mapped[int] = mapped_column(Integer)
    version_id: Mapped[uuid.UUID]
    submission_key: Mapped[str] = mapped_column(String(128))
    org_path: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list)
    language: Mapped[str] = mapped_column(String(16))
    answers: Mapped[dict[str, Any]] = mapped_column(JSONB)
    hidden: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    nps: Mapped[int | None] = mapped_column(Integer)
    nps_category: Mapped[str | None] = mapped_column(String(16))
    submitted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class OutboxRow(Base):
    __tablename__ = "outbox"
    __table_args__ = ({"schema": "survey"},)
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID]
    subject: Mapped[str] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(Text)
    tenant_id: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)


class NaiveSubmit(BaseModel):
    answers: dict[str, Any]
    hidden: dict[str, str] = {}
    submission_id: str | None = None
    language: str = "zh-Hans"


class NaiveRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    survey_id: uuid.UUID
    version: int
    language: str
    answers: dict[str, Any]
    nps: int | None
    nps_category: str | None
    submitted_at: dt.datetime


def naive_app() -> FastAPI:
    # 20 pooled connections, as the others have; with overflow connections SQLAlchemy would open and close
    # connections under 32 clients, and this peer would be measuring Postgres backend start-ups.
    engine = create_async_engine(_url("asyncpg"), pool_size=20, max_overflow=0)
    sessions = async_sessionmaker(engine)

    async def get_session() -> AsyncIterator[AsyncSession]:
        async with sessions() as session:
            yield session

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/surveys/{survey_id}/responses", status_code=201, response_model=NaiveRead)
    async def submit(survey_id: uuid.UUID, body: NaiveSubmit, session: AsyncSession = Depends(get_session)) -> Any:
        survey = await session.get(SurveyRow, survey_id)
        if survey is None:
            raise HTTPException(404, "survey not found")
        if survey.status != "published":
            raise HTTPException(409, "survey not published")
        version = (
            await session.execute(
                select(VersionRow).where(
                    VersionRow.survey_id == survey.id, VersionRow.version == survey.current_version
                )
            )
        ).scalar_one()
        nps = body.answers.get("nps")
        if nps is not None and not (isinstance(nps, int) and 0 <= nps <= 10):
            raise HTTPException(422, "answers.nps: 0 to 10")
        response = ResponseRow(
            tenant_id=survey.tenant_id,
            survey_id=survey.id,
            version=version.version,
            version_id=version.id,
            submission_key=body.submission_id or f"anon:{uuid.uuid4()}",
            language=body.language,
            answers=body.answers,
            hidden=body.hidden,
            nps=nps,
            nps_category=_category(nps),
            submitted_at=dt.datetime.now(dt.UTC),
        )
        session.add(response)
        await session.flush()
        event = {"response_id": str(response.id), "survey_id": str(survey.id), "nps": nps, "answers": body.answers}
        session.add(
            OutboxRow(
                event_id=uuid.uuid4(),
                subject=SUBJECT,
                event_type=EVENT_TYPE,
                tenant_id=str(survey.tenant_id),
                payload=json.dumps(event, ensure_ascii=False).encode(),
            )
        )
        await session.commit()
        await session.refresh(response)
        return response

    return app


# -- ceiling: Starlette + asyncpg, by hand ----------------------------------------------------------------------------

_LOOKUP = (
    "SELECT s.tenant_id, s.status, v.id AS version_id, v.version FROM survey.surveys s "
    "JOIN survey.survey_versions v ON v.survey_id = s.id AND v.version = s.current_version WHERE s.id = $1"
)
_INSERT_RESPONSE = (
    "INSERT INTO survey.responses (id, tenant_id, survey_id, version, version_id, submission_key, org_path, language, "
    "answers, hidden, nps, nps_category, submitted_at) VALUES ($1, $2, $3, $4, $5, $6, '{}', $7, $8, $9, $10, $11, $12)"
)
_INSERT_EVENT = (
    "INSERT INTO survey.outbox (event_id, subject, event_type, tenant_id, payload) VALUES ($1, $2, $3, $4, $5)"
)


def ceiling_app() -> Starlette:
    import asyncpg

    state: dict[str, Any] = {}

    async def _init(conn: Any) -> None:
        await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state["pool"] = await asyncpg.create_pool(_url(""), min_size=10, max_size=20, init=_init)
        yield
        await state["pool"].close()

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def submit(request: Request) -> Response:
        try:
            survey_id = uuid.UUID(request.path_params["survey_id"])
            body = json.loads(await request.body())
            answers = body["answers"]
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"detail": "bad request"}, status_code=400)
        nps = answers.get("nps")
        if nps is not None and not (isinstance(nps, int) and 0 <= nps <= 10):
            return JSONResponse({"detail": "answers.nps: 0 to 10"}, status_code=422)
        response_id, now = uuid.uuid4(), dt.datetime.now(dt.UTC)
        language = body.get("language") or "zh-Hans"
        async with state["pool"].acquire() as conn:
            survey = await conn.fetchrow(_LOOKUP, survey_id)
            if survey is None or survey["status"] != "published":
                return JSONResponse({"detail": "survey not published"}, status_code=409)
            event = {"response_id": str(response_id), "survey_id": str(survey_id), "nps": nps, "answers": answers}
            async with conn.transaction():
                await conn.execute(
                    _INSERT_RESPONSE,
                    response_id,
                    survey["tenant_id"],
                    survey_id,
                    survey["version"],
                    survey["version_id"],
                    body.get("submission_id") or f"anon:{response_id}",
                    language,
                    answers,
                    body.get("hidden") or {},
                    nps,
                    _category(nps),
                    now,
                )
                await conn.execute(
                    _INSERT_EVENT,
                    uuid.uuid4(),
                    SUBJECT,
                    EVENT_TYPE,
                    str(survey["tenant_id"]),
                    json.dumps(event, ensure_ascii=False).encode(),
                )
        out = {
            "id": str(response_id),
            "survey_id": str(survey_id),
            "version": survey["version"],
            "language": language,
            "answers": answers,
            "nps": nps,
            "nps_category": _category(nps),
            "submitted_at": now.isoformat(),
        }
        return JSONResponse(out, status_code=201)

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/surveys/{survey_id}/responses", submit, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
