"""Rule conditions evaluated against normalised signals (pure, no I/O)."""

import datetime as dt
import uuid

import pytest
from pydantic import TypeAdapter

from cx_alerts.rules.conditions import Condition, evaluate
from cx_alerts.signals.service import Aspect, Signal

CONDITION = TypeAdapter(Condition)


def signal(**kw):
    base = {
        "event_id": uuid.uuid4(),
        "event_type": "feedback.analyzed",
        "tenant_id": uuid.uuid4(),
        "occurred_at": dt.datetime(2026, 11, 23, tzinfo=dt.UTC),
    }
    return Signal(**{**base, **kw})


@pytest.mark.parametrize(
    ("condition", "sig", "expected"),
    [
        ({"type": "score", "metric": "csat", "op": "<=", "value": 2}, signal(csat=2.0), True),
        ({"type": "score", "metric": "csat", "op": "<=", "value": 2}, signal(csat=3.0), False),
        ({"type": "score", "metric": "nps", "op": "<=", "value": 6}, signal(), False),  # no score at all
        ({"type": "keywords", "any_of": ["Refund"]}, signal(text="I want a refund now"), True),
        ({"type": "keywords", "any_of": ["Refund"], "case_sensitive": True}, signal(text="a refund"), False),
        ({"type": "keywords", "any_of": ["退款"]}, signal(keywords=["退款", "物流"]), True),
        ({"type": "high_risk"}, signal(intents={"compliance_risk": 0.8}), True),
        ({"type": "high_risk"}, signal(intents={"legal_threat": 0.7}), True),
        ({"type": "high_risk"}, signal(intents={"purchase_intent": 0.99, "complaint": 0.99}), False),
        ({"type": "high_risk", "intents": ["Media-Threat"]}, signal(intents={"media_threat": 0.9}), True),
        # rules may spell intents either way; signals carry the nlp service's names
        ({"type": "intent", "intent": "churn-risk", "min_score": 0.7}, signal(intents={"churn_risk": 0.8}), True),
        ({"type": "intent", "intent": "churn_risk", "min_score": 0.7}, signal(intents={"churn_risk": 0.6}), False),
        ({"type": "high_risk", "phrases": ["12315"]}, signal(text="我要打12315"), True),
        ({"type": "aspect", "path": ["物流", "速度"]}, signal(aspects=[Aspect(["物流"], "negative", 0.9)]), False),
        ({"type": "aspect", "path": ["物流"]}, signal(aspects=[Aspect(["物流", "速度"], "positive", 0.9)]), True),
        ({"type": "not", "condition": {"type": "sentiment", "label": "positive"}}, signal(sentiment="negative"), True),
        (
            {
                "type": "all",
                "conditions": [
                    {"type": "intent", "intent": "complaint", "min_score": 0.5},
                    {"type": "not", "condition": {"type": "keywords", "any_of": ["谢谢"]}},
                ],
            },
            signal(intents={"complaint": 0.7}, text="谢谢你们"),
            False,
        ),
    ],
)
async def test_conditions(condition, sig, expected):
    matched, reasons = await evaluate(CONDITION.validate_python(condition), sig)
    assert matched is expected
    assert bool(reasons) is expected


async def test_reasons_explain_the_match():
    cond = CONDITION.validate_python(
        {
            "type": "any",
            "conditions": [{"type": "regex", "patterns": [r"\d{11}"]}, {"type": "keywords", "any_of": ["x"]}],
        }
    )
    matched, reasons = await evaluate(cond, signal(text="call 13800000000"))
    assert matched and reasons == ["pattern '\\\\d{11}'"]


async def test_a_failed_branch_leaves_no_reason():
    cond = CONDITION.validate_python(
        {
            "type": "any",
            "conditions": [
                {
                    "type": "all",
                    "conditions": [{"type": "keywords", "any_of": ["慢"]}, {"type": "intent", "intent": "x"}],
                },
                {"type": "sentiment", "label": "negative"},
            ],
        }
    )
    matched, reasons = await evaluate(cond, signal(text="太慢", sentiment="negative", sentiment_score=0.9))
    assert matched and reasons == ["sentiment negative (0.90)"]


def test_signals_carry_the_nlp_service_intent_names():
    from cx.events.v1 import events_pb2
    from cx_alerts.signals.service import from_envelope
    from cx_common.events import build_envelope

    analysed = events_pb2.FeedbackAnalyzed(
        context=events_pb2.FeedbackContext(feedback_id="f-1", org_unit_id="s1"),
        intents=[events_pb2.IntentSignal(intent="Churn-Risk", score=0.9)],
    )
    envelope = build_envelope(tenant_id=uuid.uuid4(), event_type="feedback.analyzed", payload=analysed, source="ingest")
    assert from_envelope(envelope).intents == {"churn_risk": pytest.approx(0.9)}


async def test_a_regex_that_would_backtrack_for_ages_is_no_match_not_a_stall():
    cond = CONDITION.validate_python(
        {
            "type": "any",
            "conditions": [{"type": "regex", "patterns": ["(a|aa)+$"]}, {"type": "keywords", "any_of": ["b"]}],
        }
    )
    # `re` would take longer than the age of the universe on this text; the rule goes on to its next branch
    matched, reasons = await evaluate(cond, signal(text="a" * 5000 + "b"))
    assert matched and reasons == ["keyword 'b'"]
    matched, _ = await evaluate(
        CONDITION.validate_python({"type": "regex", "patterns": ["(a|aa)+$"]}), signal(text="a" * 5000 + "!")
    )
    assert matched is False
