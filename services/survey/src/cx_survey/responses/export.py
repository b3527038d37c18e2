"""Streaming CSV and XLSX export of responses (one row per response, one column per question)."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from cx_survey.responses.models import Response

BASE_COLUMNS = [
    "response_id",
    "survey_id",
    "version",
    "submitted_at",
    "language",
    "touchpoint_id",
    "journey_stage",
    "channel",
    "org_unit_id",
    "customer_key",
    "nps",
    "nps_category",
    "csat",
    "ces",
    "duration_ms",
]


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return value


def _row(r: Response, question_ids: list[str]) -> list[Any]:
    base = [
        r.id,
        r.survey_id,
        r.version,
        r.submitted_at.isoformat(),
        r.language,
        r.touchpoint_id,
        r.journey_stage,
        r.channel,
        r.org_unit_id,
        r.customer_key,
        r.nps,
        r.nps_category,
        r.csat,
        r.ces,
        r.duration_ms,
    ]
    return [_cell(str(v) if hasattr(v, "hex") else v) for v in base] + [_cell(r.answers.get(q)) for q in question_ids]


async def stream_csv(session: AsyncSession, query: Select[Any], question_ids: list[str]) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")  # Excel opens UTF-8 Chinese text correctly with a BOM
    writer.writerow(BASE_COLUMNS + [f"q:{q}" for q in question_ids])
    result = await session.stream_scalars(query.execution_options(yield_per=500))
    async for response in result:
        writer.writerow(_row(response, question_ids))
        if buffer.tell() > 64_000:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


async def stream_xlsx(session: AsyncSession, query: Select[Any], question_ids: list[str]) -> AsyncIterator[bytes]:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("responses")
    sheet.append(BASE_COLUMNS + [f"q:{q}" for q in question_ids])
    result = await session.stream_scalars(query.execution_options(yield_per=500))
    async for response in result:
        sheet.append(_row(response, question_ids))
    with tempfile.TemporaryFile() as handle:
        workbook.save(handle)
        handle.seek(0)
        while chunk := handle.read(64_000):
            yield chunk
