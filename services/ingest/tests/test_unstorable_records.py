"""Records that pass the schema but that Postgres could not store as sent: each is rejected (or made storable) on
its own, and the rest of its batch or file goes in. Before, one such record failed its whole request with a 500,
and a file import stopped for good at the chunk holding it."""

import asyncio
import csv
import io
import json
import uuid

import pytest

from cx_ingest.feedback import records
from cx_ingest.feedback.upsert import SEPARATORS


@pytest.fixture
def ingest_overrides(tmp_path):
    return {"analysis_enabled": False, "import_dir": str(tmp_path / "imports")}


def results_by_id(body: dict) -> dict:
    return {r["external_id"]: r for r in body["results"]}


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
async def test_a_record_with_a_nul_is_rejected_alone_whatever_the_content_type(ingest, content_type):
    tenant = uuid.uuid4()
    _, key = await ingest.partner(tenant, default_channel="email")
    items = [
        {"external_id": "good", "text": "送货很快"},
        {"external_id": "nul", "text": "x\u0000y"},
        {"external_id": "nul-attr", "text": "ok", "attributes": {"note": "a\u0000"}},
        {"external_id": "surrogate", "text": "bad \ud800 half"},
    ]
    headers = ingest.key(key) | ({"content-type": content_type} if content_type else {})
    response = await ingest.client.post("/v1/feedback:batch", content=json.dumps({"items": items}), headers=headers)
    assert response.status_code == 200, response.text
    by_id = results_by_id(response.json())
    assert by_id["good"]["status"] == "accepted"
    assert by_id["nul"]["status"] == "rejected" and by_id["nul"]["errors"][0]["field"] == "text"
    assert "NUL" in by_id["nul"]["reason"]
    assert by_id["nul-attr"]["errors"][0]["field"] == "attributes.note"
    assert by_id["surrogate"]["status"] == "rejected" and "surrogate" in by_id["surrogate"]["reason"]
    stored = await ingest.sql("SELECT external_id FROM feedback_items WHERE tenant_id = $1", tenant)
    assert [r["external_id"] for r in stored] == ["good"]


async def test_odata_record_with_a_nul_is_rejected_alone(ingest):
    tenant = uuid.uuid4()
    _, key = await ingest.partner(tenant)
    items = [{"record_key": "o1", "attributes": {"amount": 5}}, {"record_key": "o2", "attributes": {"memo": "\u0000"}}]
    response = await ingest.client.post(
        "/v1/odata/orders:batch", content=json.dumps({"items": items}), headers=ingest.key(key)
    )
    assert response.status_code == 200, response.text
    statuses = [r["status"] for r in response.json()["results"]]
    assert statuses == ["accepted", "rejected"]


async def test_out_of_range_times_are_rejected_and_long_redacted_titles_fit(ingest):
    tenant = uuid.uuid4()
    _, key = await ingest.partner(tenant)
    title = "x" * 493 + " a@b.cn"  # 500 characters; "[EMAIL]" is one longer than the address
    items = [
        {"external_id": "late", "text": "ok", "occurred_at": "9999-12-31T23:59:59-01:00"},
        {"external_id": "early", "text": "ok", "occurred_at": "0001-01-01T00:30:00+01:00"},
        {"external_id": "title", "text": "ok", "title": title},
    ]
    response = await ingest.client.post("/v1/feedback:batch", json={"items": items}, headers=ingest.key(key))
    assert response.status_code == 200, response.text
    by_id = results_by_id(response.json())
    for late in ("late", "early"):
        assert by_id[late]["status"] == "rejected"
        assert by_id[late]["errors"][0]["field"] == "occurred_at"
    assert "less than 9999-12-30" in by_id["late"]["reason"]
    assert "greater than 0001-01-02" in by_id["early"]["reason"]
    assert by_id["title"]["status"] == "accepted"
    stored = await ingest.sql("SELECT title FROM feedback_items WHERE tenant_id = $1", tenant)
    assert len(stored[0]["title"]) == 500 and stored[0]["title"].startswith("x" * 493)


async def test_a_batch_whose_text_uses_every_separator_is_stored_intact(ingest):
    tenant = uuid.uuid4()
    _, key = await ingest.partner(tenant)
    every = "".join(SEPARATORS)
    items = [{"external_id": "all", "text": f"a{every}b"}, {"external_id": "plain", "text": ""}]
    items[1]["text"] = "plain text"
    response = await ingest.client.post("/v1/feedback:batch", json={"items": items}, headers=ingest.key(key))
    assert response.status_code == 200, response.text
    assert [r["status"] for r in response.json()["results"]] == ["accepted", "accepted"]
    stored = await ingest.sql("SELECT text FROM feedback_items WHERE tenant_id = $1 AND external_id = 'all'", tenant)
    assert stored[0]["text"] == f"a{every}b"
    again = await ingest.client.post("/v1/feedback:batch", json={"items": items}, headers=ingest.key(key))
    assert [r["status"] for r in again.json()["results"]] == ["duplicate", "duplicate"]


async def test_a_csv_row_with_a_nul_goes_to_the_error_report_and_the_import_completes(ingest):
    tenant = uuid.uuid4()
    _, key = await ingest.partner(tenant, default_channel="store")
    buffer = io.StringIO()
    rows = [["external_id", "text"]] + [[f"r{i}", f"第{i}条"] for i in range(1, 1201)]
    rows[600][1] = "bad\u0000row"
    csv.writer(buffer).writerows(rows)
    started = await ingest.client.post(
        "/v1/feedback:import",
        files={"file": ("f.csv", buffer.getvalue().encode(), "text/csv")},
        headers=ingest.key(key),
    )
    assert started.status_code == 202, started.text
    import_id = started.json()["import_id"]
    for _ in range(600):  # bounded wait, not a timing assertion
        done = (await ingest.client.get(f"/v1/imports/{import_id}", headers=ingest.key(key))).json()
        if done["status"] != "running":
            break
        await asyncio.sleep(0.05)
    assert done["status"] == "completed", done
    assert done["counts"] == {"total": 1200, "accepted": 1199, "duplicate": 0, "rejected": 1}
    report = await ingest.client.get(f"/v1/imports/{import_id}/errors.csv", headers=ingest.key(key))
    lines = list(csv.reader(io.StringIO(report.content.decode("utf-8-sig"))))
    assert lines[1][:2] == ["600", "r600"] and "NUL" in lines[1][2]


async def test_a_batch_postgres_refuses_is_stored_record_by_record(ingest, monkeypatch):
    """A value no validation foresaw (here: the title cut is switched off, so a redacted title outgrows its
    column): the request runs again record by record; only that record is rejected, a replay answers the same."""
    monkeypatch.setattr(records, "MAX_TITLE", 10_000)
    tenant = uuid.uuid4()
    _, key = await ingest.partner(tenant)
    items = [
        {"external_id": "a", "text": "送货很快"},
        {"external_id": "long", "text": "ok", "title": "x" * 493 + " a@b.cn"},
        {"external_id": "a", "text": "again in this batch"},
        {"external_id": "b", "text": "fine"},
    ]
    headers = ingest.key(key) | {"Idempotency-Key": "careful-1"}
    response = await ingest.client.post("/v1/feedback:batch", json={"items": items}, headers=headers)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected", "duplicate", "accepted"]
    assert results[1]["reason"].startswith("record: could not be stored")
    assert results[2]["id"] == results[0]["id"] and "repeats record 0" in results[2]["reason"]
    stored = await ingest.sql("SELECT external_id FROM feedback_items WHERE tenant_id = $1 ORDER BY 1", tenant)
    assert [r["external_id"] for r in stored] == ["a", "b"]
    events = await ingest.sql("SELECT count(*) AS n FROM outbox WHERE event_type = 'feedback.received'")
    assert events[0]["n"] == 2
    replay = await ingest.client.post("/v1/feedback:batch", json={"items": items}, headers=headers)
    assert replay.status_code == 200 and replay.content == response.content


async def test_a_score_that_is_not_a_finite_number_rejects_its_record(ingest):
    tenant = uuid.uuid4()
    _, key = await ingest.partner(tenant)
    body = (
        b'{"items": [{"external_id": "nan", "text": "x", "scores": {"csat": NaN}}, {"external_id": "ok", "text": "y"}]}'
    )
    response = await ingest.client.post("/v1/feedback:batch", content=body, headers=ingest.key(key))
    assert response.status_code == 200, response.text
    by_id = results_by_id(response.json())
    assert by_id["nan"]["status"] == "rejected" and by_id["nan"]["errors"][0]["field"] == "scores.csat"
    assert by_id["ok"]["status"] == "accepted"
