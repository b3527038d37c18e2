"""NLP down: ingest keeps accepting, the breaker opens, nothing is lost or failed; the backlog drains afterwards."""

import uuid

import pytest

from cx_local.pytest_plugin import eventually as poll


@pytest.fixture
def ingest_overrides(nlp_down):
    return {
        "analysis_enabled": True,
        "nlp_grpc_target": nlp_down.target,
        "analysis_batch_size": 4,
        "analysis_linger_s": 0.0,
        "analysis_poll_interval_s": 0.1,
        "analysis_backoff_base_s": 0.05,
        "analysis_backoff_max_s": 0.2,
        "analysis_max_attempts": 2,
        "breaker_failure_threshold": 2,
        "breaker_cooldown_s": 0.2,
        "nlp_timeout_s": 10.0,
    }


async def eventually(check):
    return await poll(check, 30.0)


async def test_backlog_drains_after_an_nlp_outage(ingest, nlp_down):
    tenant = uuid.uuid4()
    _, key = await ingest.partner(tenant)
    items = [{"external_id": str(i), "text": f"反馈{i}"} for i in range(10)]
    sent = await ingest.client.post("/v1/feedback:batch", json={"items": items}, headers=ingest.key(key))
    assert sent.json()["counts"]["accepted"] == 10
    worker = ingest.app.state.runtime.extras["analysis_worker"]

    async def breaker_opened_several_times():
        rows = await ingest.sql("SELECT count(*) AS n FROM feedback_items WHERE last_error LIKE 'UNAVAILABLE%'")
        return rows[0]["n"] > 0 and worker.breaker.failures >= 4

    await eventually(breaker_opened_several_times)
    # Still accepting while NLP is down, and nothing has been given up on (more outages than max_attempts).
    more = await ingest.client.post(
        "/v1/feedback:batch", json={"items": [{"external_id": "late", "text": "晚到的反馈"}]}, headers=ingest.key(key)
    )
    assert more.json()["counts"]["accepted"] == 1
    rows = await ingest.sql("SELECT count(*) AS n FROM feedback_items WHERE analysis_state IN ('done', 'failed')")
    assert rows[0]["n"] == 0

    await nlp_down.start()

    async def drained():
        rows = await ingest.sql("SELECT analysis_state, analysis_count FROM feedback_items")
        return {(r["analysis_state"], r["analysis_count"]) for r in rows} == {("done", 1)} and len(rows) == 11

    await eventually(drained)
    events = await ingest.sql("SELECT count(*) AS n FROM outbox WHERE event_type = 'feedback.analyzed'")
    assert events[0]["n"] == 11
    assert worker.breaker.state == "closed"
