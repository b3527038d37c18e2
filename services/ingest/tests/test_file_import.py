"""CSV and XLSX imports: streamed in chunks, column mapping, progress, error report, resume after a restart."""

import asyncio
import csv
import io
import uuid

import pytest
from openpyxl import Workbook

from cx_ingest.feedback import files
from cx_ingest.main import create_app
from cx_local.pytest_plugin import app_client


@pytest.fixture
def ingest_overrides(tmp_path):
    return {"analysis_enabled": False, "import_dir": str(tmp_path / "imports")}


async def wait_import(ingest, key, import_id, limit: float = 30.0) -> dict:
    deadline = asyncio.get_running_loop().time() + limit
    while True:
        body = (await ingest.client.get(f"/v1/imports/{import_id}", headers=ingest.key(key))).json()
        if body["status"] != "running":
            return body
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"import still running: {body}")
        await asyncio.sleep(0.05)


def csv_bytes(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return ("\ufeff" + buffer.getvalue()).encode()


async def test_csv_with_bad_rows_column_mapping_and_error_report(ingest):
    tenant = uuid.uuid4()
    _, key = await ingest.partner(tenant, default_channel="store")
    rows = [["编号", "内容", "门店", "评分", "时间"]]
    for i in range(1, 1201):
        if i % 100 == 0:
            rows.append([f"r{i}", "", "S1", "3", "2026-11-01T10:00:00+08:00"])  # no text: rejected
        else:
            rows.append([f"r{i}", f"第{i}条，电话13812345678", "S1", "4", "2026-11-01T10:00:00+08:00"])
    rows.append(["r1", "第1条，电话13812345678", "S1", "4", "2026-11-01T10:00:00+08:00"])  # repeats row 1
    rows.append(["", "", "", "", ""])  # blank line
    columns = (
        '{"external_id": "编号", "text": "内容", "org_unit_id": "门店", "scores.rating": "评分", "occurred_at": "时间"}'
    )
    started = await ingest.client.post(
        "/v1/feedback:import",
        files={"file": ("反馈.csv", csv_bytes(rows), "text/csv")},
        data={"columns": columns},
        headers=ingest.key(key),
    )
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "running"
    done = await wait_import(ingest, key, started.json()["import_id"])
    assert done["status"] == "completed", done
    assert done["counts"] == {"total": 1201, "accepted": 1188, "duplicate": 1, "rejected": 12}
    assert done["total_rows"] == 1202
    assert done["processed_rows"] == 1202
    stored = await ingest.sql("SELECT count(*) AS n, min(text) AS t, min(channel) AS c FROM feedback_items")
    assert stored[0]["n"] == 1188
    assert "[PHONE]" in stored[0]["t"]
    assert stored[0]["c"] == "store"

    report = await ingest.client.get(f"/v1/imports/{done['import_id']}/errors.csv", headers=ingest.key(key))
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(report.content.decode("utf-8-sig"))))
    assert lines[0] == ["row", "external_id", "reason"]
    assert lines[1] == ["100", "r100", "record: text or turns is required"]
    assert len(lines) == 13


async def test_xlsx_import_with_header_names_as_fields(ingest):
    tenant = uuid.uuid4()
    _, key = await ingest.partner(tenant)
    wb = Workbook()
    ws = wb.active
    ws.append(["external_id", "text", "channel", "customer_key"])
    ws.append([1001, "Great service", "review", "C1"])
    ws.append([1002, "Shipping was slow", "fax", "C2"])
    ws.append([1003, "OK", "email", "C3"])
    buffer = io.BytesIO()
    wb.save(buffer)
    started = await ingest.client.post(
        "/v1/feedback:import",
        files={"file": ("reviews.xlsx", buffer.getvalue(), "application/octet-stream")},
        headers=ingest.key(key),
    )
    assert started.status_code == 202, started.text
    done = await wait_import(ingest, key, started.json()["import_id"])
    assert done["counts"] == {"total": 3, "accepted": 2, "duplicate": 0, "rejected": 1}
    rows = await ingest.sql("SELECT external_id, channel FROM feedback_items ORDER BY external_id")
    assert [(r["external_id"], r["channel"]) for r in rows] == [("1001", "review"), ("1003", "email")]


async def test_bad_uploads_are_refused(ingest):
    _, key = await ingest.partner(uuid.uuid4())
    wrong_type = await ingest.client.post(
        "/v1/feedback:import", files={"file": ("x.txt", b"a", "text/plain")}, headers=ingest.key(key)
    )
    assert wrong_type.status_code == 422
    assert wrong_type.json()["errors"][0]["field"] == "file"
    bad_columns = await ingest.client.post(
        "/v1/feedback:import",
        files={"file": ("x.csv", b"a\n1", "text/csv")},
        data={"columns": '{"colour": "a", "external_id": "a"}'},
        headers=ingest.key(key),
    )
    assert bad_columns.status_code == 422
    assert bad_columns.json()["errors"][0]["field"] == "columns.colour"


async def test_interrupted_import_resumes_at_the_committed_row(ingest, cx_tokens, monkeypatch):
    tenant = uuid.uuid4()
    _, key = await ingest.partner(tenant)
    monkeypatch.setattr(files, "CHUNK_ROWS", 10)
    rows = [["external_id", "text"]] + [[f"x{i}", f"反馈{i}"] for i in range(1, 56)]

    # Stop the service while the import runs: the import task is cancelled between chunks.
    original = files.service.store_feedback
    calls = 0
    gate = asyncio.Event()

    async def slow_store(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == 3:
            gate.set()
            await asyncio.sleep(3600)  # hangs in the third chunk until cancelled
        return await original(*args, **kwargs)

    monkeypatch.setattr(files.service, "store_feedback", slow_store)
    started = await ingest.client.post(
        "/v1/feedback:import", files={"file": ("big.csv", csv_bytes(rows), "text/csv")}, headers=ingest.key(key)
    )
    import_id = started.json()["import_id"]
    await asyncio.wait_for(gate.wait(), 10)
    task = next(t for t in ingest.app.state.runtime.tasks if t.get_name() == f"import-{import_id}")
    task.cancel()
    progress = (await ingest.client.get(f"/v1/imports/{import_id}", headers=ingest.key(key))).json()
    assert progress["status"] == "running"
    assert progress["processed_rows"] == 20
    monkeypatch.setattr(files.service, "store_feedback", original)

    # A new process starts with the same database and import directory: it resumes at row 21.
    app = create_app(ingest.settings)
    async with app_client(app, cx_tokens) as client:
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            body = (await client.get(f"/v1/imports/{import_id}", headers=ingest.key(key))).json()
            if body["status"] == "completed":
                break
            assert asyncio.get_running_loop().time() < deadline, body
            await asyncio.sleep(0.05)
    assert body["processed_rows"] == 55
    assert body["counts"]["accepted"] == 55
    stored = await ingest.sql("SELECT count(*) AS n, count(DISTINCT external_id) AS d FROM feedback_items")
    assert (stored[0]["n"], stored[0]["d"]) == (55, 55)
    events = await ingest.sql("SELECT count(*) AS n FROM outbox WHERE event_type = 'feedback.received'")
    assert events[0]["n"] == 55


async def _import_peak_memory(ingest, tenant, partner_id, path, rows: int) -> tuple[int, int, dict]:
    """Write a CSV of `rows` rows, run the import task in this process under tracemalloc;
    (peak bytes, file bytes, import status)."""
    import tracemalloc

    text = "配送太慢了，客服态度也不好，希望改进。" * 8
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["external_id", "text", "customer_key"])
        for i in range(rows):
            writer.writerow([f"{path.stem}-{i}", f"{text}{i}", f"cust-{i % 997}"])
    size = path.stat().st_size
    import_id = await ingest.queued_file_import(tenant, partner_id, path)
    runtime = ingest.app.state.runtime
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        await files.process_import(runtime.sessions, import_id, ingest.settings.events_subject_prefix)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    rows_out = await ingest.sql("SELECT status, processed_rows, accepted FROM imports WHERE id = $1", import_id)
    return peak, size, dict(rows_out[0])


async def test_large_csv_is_streamed_in_constant_memory(ingest, tmp_path, monkeypatch):
    """Memory does not grow with the file: a file 10x larger peaks at about the same memory, far below its size
    (what a chunk of rows needs, whatever the number of rows: a million-row file is read the same way)."""
    monkeypatch.setattr(files, "CHUNK_ROWS", 100)
    tenant = uuid.uuid4()
    partner_id, _ = await ingest.partner(tenant)
    small_path, large_path = tmp_path / "small.csv", tmp_path / "large.csv"
    small, _, small_status = await _import_peak_memory(ingest, tenant, partner_id, small_path, 1_000)
    large, size, large_status = await _import_peak_memory(ingest, tenant, partner_id, large_path, 10_000)
    assert small_status == {"status": "completed", "processed_rows": 1_000, "accepted": 1_000}
    assert large_status == {"status": "completed", "processed_rows": 10_000, "accepted": 10_000}
    assert large < size / 2  # never the whole file in memory
    assert large < 1.5 * small + 512 * 1024, (small, large)  # flat: chunks of CHUNK_ROWS rows at a time
