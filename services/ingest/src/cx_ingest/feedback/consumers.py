"""survey.response.submitted -> open-text answers become feedback items of channel `survey`."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from cx.events.v1 import events_pb2
from cx_common.app import Runtime
from cx_common.events import EventConsumer
from cx_ingest.feedback.records import Source
from cx_ingest.feedback.schemas import MAX_TEXT, FeedbackIn
from cx_ingest.feedback.service import store_feedback
from cx_ingest.orgs.service import org_consumer
from cx_ingest.pg import SessionDb

LANGUAGES = {"zh-Hans", "zh-Hant", "en"}


def survey_items(tenant_id: str, payload: events_pb2.SurveyResponseSubmitted) -> list[FeedbackIn]:
    scores: dict[str, float] = {}
    if payload.HasField("nps"):
        scores["nps"] = float(payload.nps)
    if payload.HasField("csat"):
        scores["csat"] = payload.csat
    if payload.HasField("ces"):
        scores["ces"] = payload.ces
    occurred = payload.submitted_at.ToDatetime(tzinfo=dt.UTC) if payload.submitted_at.seconds else None
    items = []
    for answer in payload.answers:
        if answer.question_type == "text" and answer.text_value.strip():
            text, kind = answer.text_value, "text"
        elif answer.other_text.strip():
            text, kind = answer.other_text, "other"
        else:
            continue
        answer_scores = dict(scores)
        if answer.HasField("number_value"):
            answer_scores["answer"] = answer.number_value
        attributes: dict[str, Any] = {
            "survey_id": payload.survey_id,
            "survey_version": payload.survey_version,
            "survey_title": payload.survey_title,
            "question_id": answer.question_id,
            "question_type": answer.question_type,
            "answer_kind": kind,
            "source_response_id": payload.response_id,
            "response_channel": payload.channel,
            "distribution_id": payload.distribution_id,
        }
        items.append(
            FeedbackIn(
                external_id=f"{payload.response_id}:{answer.question_id}:{kind}"[:200],
                channel="survey",
                text=text[:MAX_TEXT],
                touchpoint_id=payload.touchpoint_id or None,
                journey_stage=payload.journey_stage or None,
                org_unit_id=payload.org_unit_id or None,
                customer_key=payload.customer_key or None,
                language=payload.language if payload.language in LANGUAGES else None,
                occurred_at=occurred,
                scores=answer_scores,
                attributes={k: v for k, v in attributes.items() if v not in ("", 0)},
            )
        )
    return items


def survey_consumer(runtime: Runtime) -> EventConsumer:
    assert runtime.bus is not None
    assert runtime.sessions is not None
    prefix = runtime.settings.events_subject_prefix
    wakeup = runtime.extras.get("analysis_wakeup")

    async def handle(session: AsyncSession, envelope: events_pb2.Envelope) -> None:
        payload = envelope.survey_response_submitted
        items = survey_items(envelope.tenant_id, payload)
        if not items:
            return
        source = Source(
            tenant_id=uuid.UUID(envelope.tenant_id),
            source_key="survey",
            partner_id=None,
            default_channel="survey",
            default_language=payload.language if payload.language in LANGUAGES else "",
        )
        await store_feedback(SessionDb(session), source, list(enumerate(items)), subject_prefix=prefix)

    def after_commit(_: events_pb2.Envelope) -> None:
        if wakeup is not None:
            wakeup.set()

    return EventConsumer(
        runtime.bus,
        runtime.sessions,
        durable="ingest-survey-responses",
        event_types=["survey.response.submitted"],
        handler=handle,
        after_commit=after_commit,
    )


def consumers(runtime: Runtime) -> Sequence[EventConsumer]:
    return [survey_consumer(runtime), org_consumer(runtime)]
