"""File imports with more than one runner (two replicas resuming the same import), with the file on another
replica, and with a row Postgres refuses: every row applied once, no live import failed, no import stopped by
one row."""

import asyncio
import csv
import uuid
from pathlib import Path

import pytest

from cx_ingest.feedback import files, records


@pytest.fixture
def ingest_overrides(tmp_path):
    return {"analysis_enabled": False, "import_dir": str(tmp_path / "imports")}


async def queued_import(ingest, tenant: uuid.UUID, partner_id: str, path: Path, rows: list[list[str]]) -> uuid.UUID:
    """A running file import of `rows` (header first) whose runner has not started yet."""
    with path.open("w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows(rows)
    return await ingest.queued_file_import(tenant, partner_id, path)


async def import_row(ingest, import_id: uuid.UUID) -> dict:
    found = await ingest.sql(
        "SELECT status, error, processed_rows, total, accepted, duplicate, rejected FROM imports WHERE id = $1",
        import_id,
    )
    return dict(found[0])


async def test_two_runners_of_one_import_apply_every_row_once(ingest, tmp_path, monkeypatch):
    tenant = uuid.uuid4()
    partner_id, _ = await ingest.partner(tenant)
    monkeypatch.setattr(files, "CHUNK_ROWS", 100)
    rows = [["external_id", "text"]] + [[f"r{i}", f"第{i}条反馈"] for i in range(1, 1201)]
    import_id = await queued_import(ingest, tenant, partner_id, tmp_path / "both.csv", rows)
    sessions = ingest.app.state.runtime.sessions
    prefix = ingest.settings.events_subject_prefix
    await asyncio.gather(*(files.process_import(sessions, import_id, prefix) for _ in range(2)))

    row = await import_row(ingest, import_id)
    assert row["status"] == "completed", row
    assert (row["processed_rows"], row["total"], row["accepted"], row["duplicate"]) == (1200, 1200, 1200, 0)
    stored = await ingest.sql("SELECT count(*) AS n FROM feedback_items WHERE tenant_id = $1", tenant)
    events = await ingest.sql("SELECT count(*) AS n FROM outbox WHERE event_type = 'feedback.received'")
    assert (stored[0]["n"], events[0]["n"]) == (1200, 1200)


async def test_an_import_whose_file_is_on_another_replica_is_left_running_until_stale(ingest, tmp_path):
    tenant = uuid.uuid4()
    partner_id, _ = await ingest.partner(tenant)
    path = tmp_path / "elsewhere.csv"
    import_id = await queued_import(ingest, tenant, partner_id, path, [["external_id", "text"], ["a", "ok"]])
    path.unlink()  # the upload lives in the other Pod's import directory
    sessions = ingest.app.state.runtime.sessions
    await files.process_import(sessions, import_id, ingest.settings.events_subject_prefix)
    assert (await import_row(ingest, import_id))["status"] == "running"

    await ingest.sql("UPDATE imports SET updated_at = now() - interval '1 hour' WHERE id = $1", import_id)
    await files.process_import(sessions, import_id, ingest.settings.events_subject_prefix)
    row = await import_row(ingest, import_id)
    assert row["status"] == "failed" and "upload it again" in row["error"]


async def test_a_row_postgres_refuses_goes_to_the_error_report_and_the_rest_is_stored(ingest, tmp_path, monkeypatch):
    """A value no validation foresaw (here: the title cut is switched off, so a redacted title outgrows its
    column): the chunk is stored row by row and only that row is rejected."""
    tenant = uuid.uuid4()
    partner_id, _ = await ingest.partner(tenant)
    monkeypatch.setattr(records, "MAX_TITLE", 10_000)
    rows = [["external_id", "text", "title"]] + [[f"r{i}", f"第{i}条", "标题"] for i in range(1, 301)]
    rows[150][2] = "x" * 493 + " a@b.cn"  # 501 characters once "[EMAIL]" replaces the address
    import_id = await queued_import(ingest, tenant, partner_id, tmp_path / "one-bad.csv", rows)
    await files.process_import(ingest.app.state.runtime.sessions, import_id, ingest.settings.events_subject_prefix)

    row = await import_row(ingest, import_id)
    assert row["status"] == "completed", row
    assert (row["total"], row["accepted"], row["rejected"]) == (300, 299, 1)
    errors = await ingest.sql(
        "SELECT row_number, external_id, reason FROM import_errors WHERE import_id = $1", import_id
    )
    assert [(e["row_number"], e["external_id"]) for e in errors] == [(150, "r150")]
    assert errors[0]["reason"].startswith("record: could not be stored")
    stored = await ingest.sql("SELECT count(*) AS n FROM feedback_items WHERE tenant_id = $1", tenant)
    assert stored[0]["n"] == 299
