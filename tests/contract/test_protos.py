"""The shared contracts: every event payload fits the envelope; the NLP service offers the RPCs the architecture
promises; generated code imports with absolute paths."""

import pytest

from cx.events.v1 import events_pb2
from cx.nlp.v1 import nlp_pb2, nlp_pb2_grpc
from cx_common.events import build_envelope, payload_of, subject_for

PAYLOADS = [
    ("survey.response.submitted", events_pb2.SurveyResponseSubmitted(response_id="r1", nps=3)),
    ("feedback.received", events_pb2.FeedbackReceived(context=events_pb2.FeedbackContext(feedback_id="f1"))),
    ("feedback.analyzed", events_pb2.FeedbackAnalyzed(sentiment="negative", keywords=["排队"])),
    ("odata.upserted", events_pb2.ODataUpserted(kind="orders", record_key="o1")),
    ("alert.raised", events_pb2.AlertRaised(alert_id="a1")),
    ("ticket.created", events_pb2.TicketChanged(ticket_id="t1", priority="P1")),
    ("ticket.follow_up_requested", events_pb2.TicketFollowUpRequested(ticket_id="t1", request_id="c1")),
    ("task.approved", events_pb2.TaskChanged(task_id="k1", status="approved")),
    ("org.unit.upserted", events_pb2.OrgUnitChanged(org_unit_id="u1", ancestor_ids=["hq", "r1"])),
    ("org.user.upserted", events_pb2.UserChanged(user_id="x")),
]


@pytest.mark.parametrize(("event_type", "payload"), PAYLOADS)
def test_every_payload_roundtrips_through_the_envelope(event_type, payload):
    envelope = build_envelope(tenant_id="tenant-1", event_type=event_type, payload=payload, source="contract")
    decoded = events_pb2.Envelope.FromString(envelope.SerializeToString())
    assert decoded.type == event_type
    assert payload_of(decoded) == payload
    assert len(decoded.event_id) == 36 and decoded.event_id[14] == "7"  # UUIDv7
    assert subject_for(event_type) == f"cx.{event_type}"


def test_every_oneof_payload_is_covered():
    fields = {f.message_type.name for f in events_pb2.Envelope.DESCRIPTOR.oneofs_by_name["payload"].fields}
    covered = {type(p).__name__ for _, p in PAYLOADS} | {"Ping"}
    assert fields == covered


def test_wrong_payload_type_is_refused():
    with pytest.raises(TypeError, match="not a payload"):
        build_envelope(tenant_id="t", event_type="x", payload=nlp_pb2.TextInput(text="hi"), source="contract")


def test_nlp_service_contract():
    service = nlp_pb2.DESCRIPTOR.services_by_name["NlpService"]
    assert {m.name for m in service.methods} == {"Analyze", "Embed", "Cluster", "RegisterCodebook", "GetModelInfo"}
    assert hasattr(nlp_pb2_grpc, "NlpServiceStub")
    tasks = {v.name for v in nlp_pb2.Task.DESCRIPTOR.values}
    assert {"TASK_LANGUAGE", "TASK_SENTIMENT", "TASK_ASPECTS", "TASK_INTENTS", "TASK_KEYWORDS", "TASK_NEEDS"} <= tasks
    hit = nlp_pb2.AspectHit.DESCRIPTOR.fields_by_name
    assert {"path", "opinion", "span", "polarity", "confidence"} <= set(hit)
