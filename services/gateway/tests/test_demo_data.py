"""The demo tenant's sample data generator (loading it through the real services: tests/console)."""

from __future__ import annotations

import datetime as dt
import uuid

from cx_gateway.demo_data import DemoPlan, generate_feedback, generate_responses


def test_generator_is_deterministic_and_bilingual():
    plan = DemoPlan(responses=300, feedback=300)
    a, b = generate_responses(plan), generate_responses(plan)
    assert a == b and len({r["submission_id"] for r in a}) == 300
    assert {r["kind"] for r in a} == {"nps", "csat"}
    assert {r["store"] for r in a} == {"S-SH-01", "S-HZ-01", "S-GZ-01", "S-SZ-01"}
    units = {code: uuid.uuid4() for code in ("S-SH-01", "S-HZ-01", "S-GZ-01", "S-SZ-01")}
    items = generate_feedback(plan, units, dt.datetime.now(dt.UTC))
    langs = {i["language"] for i in items}
    assert langs == {"zh-Hans", "en"}
    assert any("排队" in i["text"] for i in items) and any("queue" in i["text"] for i in items)
    # the Guangzhou store has the worst scores: a story for the drill-down
    nps = {s: [r["answers"]["nps"] for r in a if r["kind"] == "nps" and r["store"] == s] for s in units}
    avg = {s: sum(v) / len(v) for s, v in nps.items()}
    assert min(avg, key=avg.__getitem__) == "S-GZ-01"
