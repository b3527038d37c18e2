"""File imports (CSV, XLSX): stored on disk, then streamed row by row in chunks by a background task.

Each chunk (rows, counts, error rows, processed_rows) commits in one transaction, so progress is exact and an import
interrupted by a restart resumes at `processed_rows` (rows before it are skipped, never re-applied). XLSX is read with
openpyxl in read-only mode (rows streamed from the zip, constant memory); CSV with the csv module (UTF-8, BOM ok).
Column mapping: {target field: column header}; without one, headers are taken as target field names.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cx_common.logging import get_logger
from cx_ingest.feedback import service
from cx_ingest.feedback.models import ImportBatch, ImportError_
from cx_ingest.feedback.records import Source, validate_records
from cx_ingest.partners.mapping import valid_target
from cx_ingest.partners.models import Partner
from cx_ingest.pg import SessionDb, refused_value

log = get_logger(__name__)

CHUNK_ROWS = 500
FORMATS = ("csv", "xlsx")


class ColumnMapError(ValueError):
    pass


def validate_column_map(column_map: dict[str, str]) -> None:
    for target, header in column_map.items():
        if not valid_target(target):
            raise ColumnMapError(f"columns.{target}: unknown target field")
        if not isinstance(header, str) or not header.strip():
            raise ColumnMapError(f"columns.{target}: must name a column")
    if column_map and "external_id" not in column_map:
        raise ColumnMapError("columns.external_id: external_id must be mapped")


def _cell(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).isoformat()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return value.strip()
    return value


def iter_rows(path: Path, file_format: str) -> Iterator[list[Any]]:
    """Header row first, then data rows; streams (never loads the whole file)."""
    if file_format == "csv":
        with path.open(newline="", encoding="utf-8-sig") as fh:
            yield from csv.reader(fh)
        return
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = workbook.worksheets[0]
        for row in sheet.iter_rows(values_only=True):
            yield [_cell(v) for v in row]
    finally:
        workbook.close()


def count_rows(path: Path, file_format: str) -> int | None:
    if file_format == "csv":
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return max(0, sum(1 for _ in csv.reader(fh)) - 1)
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True)
    try:
        rows = workbook.worksheets[0].max_row
        return max(0, rows - 1) if rows else None
    finally:
        workbook.close()


def record_from_row(header: list[str], row: list[Any], column_map: dict[str, str] | None) -> dict[str, Any]:
    by_header = {h: _cell(v) for h, v in zip(header, row, strict=False) if v not in (None, "")}
    pairs = column_map.items() if column_map else ((h, h) for h in header)
    record: dict[str, Any] = {}
    for target, column in pairs:
        if column not in by_header:
            continue
        value = by_header[column]
        if target == "external_id":
            value = str(value)
        for prefix in ("attributes.", "scores."):
            if target.startswith(prefix):
                record.setdefault(prefix[:-1], {})[target[len(prefix) :]] = value
                break
        else:
            record[target] = value
    return record


async def _chunks(path: Path, file_format: str, skip: int) -> Any:
    """Async generator of (header, [(row_number, row)]) chunks, reading the file in a worker thread."""
    rows = iter_rows(path, file_format)
    header_row = await asyncio.to_thread(next, rows, None)
    if header_row is None:
        return
    header = [str(h).strip() if h is not None else "" for h in header_row]

    def take(start: int) -> list[tuple[int, list[Any]]]:
        out = []
        for number, row in enumerate(rows, start=start):
            if any(v not in (None, "") for v in row):
                out.append((number, row))
            else:
                out.append((number, []))  # blank line: counted, skipped
            if len(out) >= CHUNK_ROWS:
                break
        return out

    # Skip what an earlier run already committed.
    skipped = 0
    while skipped < skip:
        batch = await asyncio.to_thread(take, skipped + 1)
        if not batch:
            return
        skipped += len(batch)
        if skipped > skip:  # chunk sizes changed between runs: hand back the unprocessed tail
            tail = batch[len(batch) - (skipped - skip) :]
            yield header, tail
    number = max(skip, skipped) + 1
    while True:
        batch = await asyncio.to_thread(take, number)
        if not batch:
            return
        number += len(batch)
        yield header, batch


STALE_AFTER = dt.timedelta(minutes=15)  # a running import nobody advanced for this long has lost its runner


class _SupersededError(Exception):
    """Another runner (a second replica resuming the same import) committed this chunk first."""


async def process_import(sessions: async_sessionmaker[AsyncSession], import_id: uuid.UUID, subject_prefix: str) -> None:
    async with sessions() as session:
        batch = await session.get(ImportBatch, import_id)
        if batch is None or batch.status != "running" or not batch.stored_path:
            return
        path, file_format = Path(batch.stored_path), batch.file_format or "csv"
        partner = await session.get(Partner, batch.partner_id) if batch.partner_id else None
        source = Source(
            tenant_id=batch.tenant_id,
            source_key=f"partner:{batch.partner_id}",
            partner_id=batch.partner_id,
            default_channel=partner.default_channel if partner else "other",
            default_language=partner.default_language if partner else "",
        )
        column_map = dict(batch.column_map) if batch.column_map else None
        skip = batch.processed_rows
        idle = dt.datetime.now(dt.UTC) - batch.updated_at
    if not await asyncio.to_thread(path.exists):
        await _file_missing(sessions, import_id, path, idle)
        return
    chunk = _ChunkWriter(sessions, import_id, source, subject_prefix, done=skip)
    try:
        if skip == 0:
            total = await asyncio.to_thread(count_rows, path, file_format)
            async with sessions() as session, session.begin():
                await session.execute(update(ImportBatch).where(ImportBatch.id == import_id).values(total_rows=total))
        async for header, rows in _chunks(path, file_format, skip):
            await chunk.write(header, rows, column_map)
        async with sessions() as session, session.begin():
            await session.execute(update(ImportBatch).where(ImportBatch.id == import_id).values(status="completed"))
        await asyncio.to_thread(path.unlink, True)
    except asyncio.CancelledError:
        raise  # shutdown: stays "running", resumed at processed_rows on the next start
    except _SupersededError:
        log.warning("file_import_superseded", import_id=str(import_id), at_row=chunk.done)
    except Exception as exc:
        log.exception("file_import_failed", import_id=str(import_id))
        async with sessions() as session, session.begin():
            await session.execute(
                update(ImportBatch).where(ImportBatch.id == import_id).values(status="failed", error=str(exc)[:2000])
            )


async def _file_missing(
    sessions: async_sessionmaker[AsyncSession], import_id: uuid.UUID, path: Path, idle: dt.timedelta
) -> None:
    """The uploaded file is not on this replica. With a per-Pod import directory it is on the replica that took
    the upload, which may still be streaming it: the import fails only once nobody has advanced it for
    `STALE_AFTER`."""
    if idle < STALE_AFTER:
        log.info("file_import_elsewhere", import_id=str(import_id), path=str(path))
        return
    error = f"the uploaded file is gone ({path}) and no replica advanced the import for {idle}; upload it again"
    async with sessions() as session, session.begin():
        await session.execute(
            update(ImportBatch)
            .where(ImportBatch.id == import_id, ImportBatch.status == "running")
            .values(status="failed", error=error)
        )


class _ChunkWriter:
    """Commits chunks of rows: records, error rows and progress in one transaction each, applied once."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        import_id: uuid.UUID,
        source: Source,
        subject_prefix: str,
        *,
        done: int,
    ) -> None:
        self.sessions = sessions
        self.import_id = import_id
        self.source = source
        self.subject_prefix = subject_prefix
        self.done = done  # rows committed, as this runner knows it

    async def write(
        self, header: list[str], rows: list[tuple[int, list[Any]]], column_map: dict[str, str] | None
    ) -> None:
        raw = [record_from_row(header, row, column_map) if row else None for _, row in rows]
        present = [(i, r) for i, r in enumerate(raw) if r is not None]
        suspect = any("\x00" in v for _, row in rows for v in row if isinstance(v, str))
        valid, rejected = validate_records([r for _, r in present], None, check_text=suspect)
        try:
            await self._commit(rows, present, valid, rejected, one_by_one=False)
        except Exception as exc:
            if not refused_value(exc):
                raise
            # One row Postgres refused (a value no validation foresaw): store the rows one by one, so that only
            # it goes to the error report and the import goes on.
            log.warning("file_import_chunk_retried_by_row", import_id=str(self.import_id), error=str(exc)[:300])
            await self._commit(rows, present, valid, rejected, one_by_one=True)
        self.done += len(rows)

    async def _commit(
        self,
        rows: list[tuple[int, list[Any]]],
        present: list[tuple[int, dict[str, Any]]],
        valid: list[tuple[int, Any]],
        rejected: dict[int, Any],
        *,
        one_by_one: bool,
    ) -> None:
        import_id = self.import_id
        async with self.sessions() as session, session.begin():
            # The import's row lock orders concurrent runners; whoever finds the count moved stops.
            committed = await session.scalar(
                select(ImportBatch.processed_rows).where(ImportBatch.id == import_id).with_for_update()
            )
            if committed != self.done:
                raise _SupersededError
            db = SessionDb(session)
            stored = await service.store_feedback(
                db, self.source, valid, subject_prefix=self.subject_prefix, one_by_one=one_by_one
            )
            results = {**rejected, **stored}
            counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
            errors = []
            for local, (pos, _) in enumerate(present):
                result = results[local]
                counts[result.status] += 1
                if result.status == "rejected":
                    errors.append(
                        {
                            "tenant_id": self.source.tenant_id,
                            "import_id": import_id,
                            "row_number": rows[pos][0],
                            "external_id": result.external_id,
                            "reason": result.reason or "rejected",
                        }
                    )
            if errors:
                await session.execute(pg_insert(ImportError_).values(errors).on_conflict_do_nothing())
            await session.execute(
                update(ImportBatch)
                .where(ImportBatch.id == import_id)
                .values(
                    processed_rows=ImportBatch.processed_rows + len(rows),
                    total=ImportBatch.total + len(present),
                    accepted=ImportBatch.accepted + counts["accepted"],
                    duplicate=ImportBatch.duplicate + counts["duplicate"],
                    rejected=ImportBatch.rejected + counts["rejected"],
                )
            )


async def resumable_imports(sessions: async_sessionmaker[AsyncSession]) -> list[uuid.UUID]:
    async with sessions() as session:
        query = select(ImportBatch.id).where(ImportBatch.status == "running", ImportBatch.stored_path.is_not(None))
        return list((await session.execute(query)).scalars())


def import_dir(configured: str | None) -> Path:
    path = Path(configured) if configured else Path(os.environ.get("TMPDIR", "/tmp")) / "cx-ingest-imports"  # noqa: S108
    path.mkdir(parents=True, exist_ok=True)
    return path
