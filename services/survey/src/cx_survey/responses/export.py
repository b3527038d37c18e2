"""Streaming CSV and XLSX export of responses (one row per response, one column per question), read from the
database in batches and sent as they are written."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections.abc import AsyncIterator
from typing import Any
from xml.sax.saxutils import escape as xml_escape

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


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_PARTS = {
    "[Content_Types].xml": (
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        '<Override PartName="/xl/styles.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/></Types>'
    ),
    "_rels/.rels": (
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Target="xl/workbook.xml" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"/></Relationships>'
    ),
    "xl/workbook.xml": (
        '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        '<sheets><sheet name="responses" sheetId="1" r:id="rId1"/></sheets></workbook>'
    ),
    "xl/_rels/workbook.xml.rels": (
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Target="worksheets/sheet1.xml" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"/>'
        '<Relationship Id="rId2" Target="styles.xml" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles"/></Relationships>'
    ),
    "xl/styles.xml": (  # the least a spreadsheet application expects: one font, fill, border and cell format
        '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        '<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
        '<fills count="1"><fill><patternFill patternType="none"/></fill></fills>'
        '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
        '<cellXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/></cellXfs>'
        '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>'
    ),
}
_XML_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'


class _Sink:
    """What the zip writer has produced since the last `take()` (a write-only, unseekable stream)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self._chunks.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None

    def take(self) -> bytes:
        out, self._chunks, self.size = b"".join(self._chunks), [], 0
        return out


def _xlsx_row(values: list[Any]) -> bytes:
    cells = []
    for value in values:
        if value == "" or value is None:
            cells.append("<c/>")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            cells.append(f"<c><v>{value}</v></c>")
        else:
            text = xml_escape(_NOT_XML.sub("", str(value)))
            cells.append(f'<c t="inlineStr"><is><t xml:space="preserve">{text}</t></is></c>')
    return ("<row>" + "".join(cells) + "</row>").encode()


async def stream_xlsx(session: AsyncSession, query: Select[Any], question_ids: list[str]) -> AsyncIterator[bytes]:
    """An .xlsx written as the rows arrive: the zip is produced in order (sizes after each part), so the first bytes
    leave before the last response is read, and memory stays flat however many responses there are."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, xml in _PARTS.items():
            archive.writestr(name, _XML_HEAD + xml)
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            sheet.write(
                (_XML_HEAD + '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">').encode()
            )
            sheet.write(b"<sheetData>" + _xlsx_row([*BASE_COLUMNS, *(f"q:{q}" for q in question_ids)]))
            result = await session.stream_scalars(query.execution_options(yield_per=500))
            async for response in result:
                sheet.write(_xlsx_row(_row(response, question_ids)))
                if sink.size > 64_000:
                    yield sink.take()
            sheet.write(b"</sheetData></worksheet>")
    yield sink.take()
