"""survey.response.submitted -> open-text answers become feedback items of channel `survey`."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import uuid
from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from cx.events.v1 import events_pb2
from cx_common.app import Runtime
from cx_common.events import EventConsumer
from cx_common.logging import get_logger
from cx_common.textguard import find_bad_text
from cx_ingest.feedback.records import Source, field_errors
from cx_ingest.feedback.schemas import MAX_TEXT, FeedbackIn, StorableAwareDatetime
from cx_ingest.feedback.service import store_feedback
from cx_ingest.orgs.service import org_consumer
from cx_ingest.pg import SessionDb, refused_value

LANGUAGES = {"zh-Hans", "zh-Hant", "en"}
MAX_KEY = 200  # the column limit of external_id and of the context fields (touchpoint_id, customer_key...)
_OCCURRED_AT = TypeAdapter(StorableAwareDatetime)

log = get_logger(__name__)


def external_id(response_id: str, question_id: str, kind: str, *, event_id: str = "") -> str:
    """The natural key of one answer: `<response>:<question>:<kind>` as before when that is unambiguous (a
    non-empty response id without ':') and fits; otherwise `sha256:<hex>` of the parts (the other form always has
    two colons, so the two never meet). Without a response id, the event id stands for the response."""
    plain = f"{response_id}:{question_id}:{kind}"
    if response_id and ":" not in response_id and len(plain) <= MAX_KEY:
        return plain
    parts = [response_id, question_id, kind] if response_id else ["", question_id, kind, event_id]
    digest = hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode("utf-8", "surrogatepass")).hexdigest()
    return f"sha256:{digest}"


def _context(value: str) -> str | None:
    return value[:MAX_KEY] or None


def _occurred(payload: events_pb2.SurveyResponseSubmitted) -> dt.datetime | None:
    """`submitted_at` when FeedbackIn can store it; None (the time of receipt) when unset or out of range."""
    if not payload.HasField("submitted_at") or not (payload.submitted_at.seconds or payload.submitted_at.nanos):
        return None
    try:
        return _OCCURRED_AT.validate_python(payload.submitted_at.ToDatetime(tzinfo=dt.UTC))
    except (ValidationError, ValueError, OverflowError, OSError):
        log.warning("survey_submitted_at_unusable", response_id=payload.response_id[:MAX_KEY])
        return None


def _finite(scores: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in scores.items() if math.isfinite(v)}


def survey_items(
    tenant_id: str, payload: events_pb2.SurveyResponseSubmitted, *, event_id: str = ""
) -> list[FeedbackIn]:
    """The open-text answers as FeedbackIn. Built defensively, so one bad value loses at most its own answer:
    context fields are cut to their column limits, NaN/Infinity scores dropped, an unusable submitted_at becomes
    the time of receipt; an answer that still is not valid (or holds text Postgres cannot store) is logged and
    skipped."""
    scores: dict[str, float] = {}
    if payload.HasField("nps"):
        scores["nps"] = float(payload.nps)
    if payload.HasField("csat"):
        scores["csat"] = payload.csat
    if payload.HasField("ces"):
        scores["ces"] = payload.ces
    scores = _finite(scores)
    occurred = _occurred(payload)
    items = []
    for answer in payload.answers:
        if answer.question_type == "text" and answer.text_value.strip():
            text, kind = answer.text_value, "text"
        elif answer.other_text.strip():
            text, kind = answer.other_text, "other"
        else:
            continue
        answer_scores = dict(scores)
        if answer.HasField("number_value") and math.isfinite(answer.number_value):
            answer_scores["answer"] = answer.number_value
        attributes: dict[str, Any] = {
            "survey_id": payload.survey_id,
            "survey_version": payload.survey_version,
            "survey_title": payload.survey_title,
            "question_id": answer.question_id,
            "question_type": answer.question_type,
            "answer_kind": kind,
            "source_response_id": payload.response_id[:MAX_KEY],  # also a column (external_id has it all)
            "response_channel": payload.channel,
            "distribution_id": payload.distribution_id,
        }
        record: dict[str, Any] = {
            "external_id": external_id(payload.response_id, answer.question_id, kind, event_id=event_id),
            "channel": "survey",
            "text": text[:MAX_TEXT],
            "touchpoint_id": _context(payload.touchpoint_id),
            "journey_stage": _context(payload.journey_stage),
            "org_unit_id": _context(payload.org_unit_id),
            "customer_key": _context(payload.customer_key),
            "language": payload.language if payload.language in LANGUAGES else None,
            "occurred_at": occurred,
            "scores": answer_scores,
            "attributes": {k: v for k, v in attributes.items() if v not in ("", 0)},
        }
        if (bad := find_bad_text(record)) is not None:
            reason = f"{bad[0]}: {bad[1]}"
        else:
            try:
                items.append(FeedbackIn.model_validate(record))
                continue
            except ValidationError as exc:
                reason = "; ".join(f"{e.field}: {e.message}" for e in field_errors(exc))
        log.warning(
            "survey_answer_skipped",
            tenant_id=tenant_id,
            response_id=payload.response_id[:MAX_KEY],
            question_id=answer.question_id[:MAX_KEY],
            reason=reason[:500],
        )
    return items


def survey_consumer(runtime: Runtime) -> EventConsumer:
    assert runtime.bus is not None
    assert runtime.sessions is not None
    prefix = runtime.settings.events_subject_prefix
    wakeup = runtime.extras.get("analysis_wakeup")

    async def handle(session: AsyncSession, envelope: events_pb2.Envelope) -> None:
        payload = envelope.survey_response_submitted
        items = survey_items(envelope.tenant_id, payload, event_id=envelope.event_id)
        if not items:
            return
        source = Source(
            tenant_id=uuid.UUID(envelope.tenant_id),
            source_key="survey",
            partner_id=None,
            default_channel="survey",
            default_language=payload.language if payload.language in LANGUAGES else "",
        )
        db = SessionDb(session)
        valid = list(enumerate(items))
        try:
            async with db.savepoint():
                results = await store_feedback(db, source, valid, subject_prefix=prefix)
        except Exception as exc:
            if not refused_value(exc):
                raise
            # A value Postgres refused that no check foresaw: answer by answer, so only that answer is lost.
            results = await store_feedback(db, source, valid, subject_prefix=prefix, one_by_one=True)
        for result in results.values():
            if result.status == "rejected":
                log.warning(
                    "survey_answer_skipped",
                    tenant_id=envelope.tenant_id,
                    external_id=result.external_id,
                    reason=(result.reason or "")[:500],
                )

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
