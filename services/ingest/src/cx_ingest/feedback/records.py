"""Partner records -> validated `FeedbackIn` -> feedback_items rows (PII redacted, content hashed) and event context."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

import uuid_utils
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import BaseModel, Field, ValidationError
from pydantic_core import to_json

from cx.events.v1 import events_pb2
from cx_common.textguard import find_bad_text, json_may_hold_bad_text
from cx_ingest.feedback.models import FeedbackItem
from cx_ingest.feedback.schemas import MAX_TITLE, BatchIn, FeedbackIn, FieldError, RecordResult
from cx_ingest.partners.mapping import FieldMapping, apply_mapping
from cx_ingest.privacy.service import TenantPrivacy


@dataclass(frozen=True)
class Source:
    tenant_id: uuid.UUID
    source_key: str  # partner:<id> | survey
    partner_id: uuid.UUID | None
    default_channel: str
    default_language: str = ""


def field_errors(exc: ValidationError) -> list[FieldError]:
    return [
        FieldError(field=".".join(str(p) for p in e["loc"]) or "record", message=e["msg"].removeprefix("Value error, "))
        for e in exc.errors()
    ]


def rejected(index: int, exc: ValidationError, external_id: Any) -> RecordResult:
    errors = field_errors(exc)
    return RecordResult(
        index=index,
        external_id=str(external_id) if isinstance(external_id, str | int) else None,
        status="rejected",
        reason=f"{errors[0].field}: {errors[0].message}",
        errors=errors,
    )


def unstorable_text(index: int, raw: dict[str, Any], key: str) -> RecordResult | None:
    """The rejection of a raw record holding a string Postgres cannot store (NUL, a lone surrogate); `key`: the
    field with the record's own id."""
    if (bad := find_bad_text(raw)) is None:
        return None
    own_id = raw.get(key)
    return field_rejected(index, str(own_id) if isinstance(own_id, str | int) else None, *bad)


def field_rejected(index: int, own_id: str | None, field: str, message: str) -> RecordResult:
    """A record rejected for one field: `<field>: <message>` as its reason and its one error."""
    return RecordResult(
        index=index,
        external_id=own_id,
        status="rejected",
        reason=f"{field}: {message}",
        errors=[FieldError(field=field, message=message)],
    )


Validated = tuple[list[tuple[int, FeedbackIn]], dict[int, RecordResult]]


class _CleanBatch(BaseModel):
    items: list[FeedbackIn] = Field(min_length=1, max_length=1000)


def parse_batch(raw: bytes, mapping: FieldMapping | None) -> tuple[int, Validated]:
    """A `BatchIn` request body -> (record count, (valid records, rejected ones)). Raises ValidationError (locations
    relative to the body) when the body itself is not a batch. Without a field mapping the whole body is first
    validated in one pass straight from the JSON bytes (pydantic-core); only a batch with bad records goes
    through the record-by-record path that reports each one."""
    suspect = json_may_hold_bad_text(raw)  # text Postgres cannot store: only the records holding it are rejected
    if mapping is None and not suspect:
        try:
            items = _CleanBatch.model_validate_json(raw).items
        except ValidationError:
            pass
        else:
            return len(items), (list(enumerate(items)), {})
    batch = read_batch(raw, suspect=suspect)
    return len(batch.items), validate_records(batch.items, mapping, check_text=suspect)


def read_batch(raw: bytes, *, suspect: bool) -> BatchIn:
    """A `BatchIn` body. `suspect` (`json_may_hold_bad_text`): parsed by the standard library, which reads a lone
    surrogate escape where pydantic-core's parser refuses the whole body, so such a record can be rejected on its
    own. Raises ValidationError."""
    if suspect:
        try:
            decoded = json.loads(raw)
        except ValueError:
            pass  # not JSON at all: the usual parser reports it
        else:
            return BatchIn.model_validate(decoded)
    return BatchIn.model_validate_json(raw)


def validate_records(raw_items: Sequence[Any], mapping: FieldMapping | None, *, check_text: bool = False) -> Validated:
    """Map (partner field mapping) and validate each record on its own: bad records are rejected with the field
    and reason, the others go on. A record without a channel gets the source's default channel when stored.
    `check_text`: also reject records with a string Postgres cannot store (NUL, a lone surrogate), which the
    caller found may be there."""
    valid: list[tuple[int, FeedbackIn]] = []
    refused: dict[int, RecordResult] = {}
    for index, raw in enumerate(raw_items):
        if not isinstance(raw, dict):
            refused[index] = RecordResult(index=index, status="rejected", reason="record: must be an object")
            continue
        if check_text and (bad := unstorable_text(index, raw, "external_id")) is not None:
            refused[index] = bad
            continue
        record = apply_mapping(mapping, raw) if mapping is not None else raw
        try:
            valid.append((index, FeedbackIn.model_validate(record)))
        except ValidationError as exc:
            refused[index] = rejected(index, exc, record.get("external_id"))
    return valid, refused


# `model_dump_json()` as bytes, without its decode to str (and our encode back) of the whole record.
_RECORD_JSON = FeedbackIn.__pydantic_serializer__.to_json


def build_row(source: Source, item: FeedbackIn, privacy: TenantPrivacy, now: dt.datetime) -> dict[str, Any]:
    """A feedback_items row (`upsert.ROW_COLUMNS`, JSON as text) for a validated record, every text redacted; the
    content hash is the SHA-256 of the record's JSON, so the same record sent again is a duplicate and any changed
    value makes it an update. Plus `turn_texts` (the redacted turns) for the event."""
    redactor = privacy.redactor
    redactions: dict[str, int] = {}
    title = item.title or ""
    if title:  # a marker may be longer than what it replaces: the column holds MAX_TITLE characters
        title = redactor.redact_into(title, redactions)[:MAX_TITLE]
    text = item.text or ""
    if text:
        text = redactor.redact_into(text, redactions)
    turns = raw_turns = None
    turn_texts: list[str] = []
    agent_id = item.agent_id or ""
    if item.turns:
        ordered = sorted(enumerate(item.turns), key=lambda p: (p[1].seq if p[1].seq is not None else p[0], p[0]))
        raw_turns = [{**t.model_dump(mode="json", exclude_none=True), "seq": seq} for seq, (_, t) in enumerate(ordered)]
        turn_texts = [redactor.redact_into(t["text"], redactions) for t in raw_turns]
        turns = [{**t, "text": redacted} for t, redacted in zip(raw_turns, turn_texts, strict=True)]
        agent_id = agent_id or next((t.agent_id for t in item.turns if t.agent_id), None) or ""
    survey = source.source_key == "survey"
    return {
        "id": str(uuid_utils.uuid7()),  # as text (see upsert.ROW_COLUMNS); uuid_utils formats it natively
        "external_id": item.external_id,
        "channel": item.channel or source.default_channel,
        "touchpoint_id": item.touchpoint_id or "",
        "journey_stage": item.journey_stage or "",
        "org_unit_id": item.org_unit_id or "",
        "customer_key": item.customer_key or "",
        "product_sku": item.product_sku or "",
        "agent_id": agent_id,
        "language": item.language or source.default_language,
        "occurred_at": item.occurred_at or now,
        "title": title,
        "text": text,
        "turns": None if turns is None else _dumps(turns),
        "turn_texts": turn_texts,
        "raw_text": item.text if privacy.keep_raw and item.text else None,
        "raw_turns": None if raw_turns is None or not privacy.keep_raw else _dumps(raw_turns),
        "redactions": _dumps(redactions) if redactions else "{}",
        "scores": _dumps(item.scores) if item.scores else "{}",
        "attributes": _dumps(item.attributes) if item.attributes else "{}",
        "source_response_id": str(item.attributes.get("source_response_id", "")) if survey else "",
        "content_hash": sha256(_RECORD_JSON(item)).hexdigest(),
    }


def _dumps(value: Any) -> str:
    """Compact JSON, non-ASCII as is (pydantic-core: ~0.3 us for a small dict, `json.dumps(…, separators=…)` ~1.5)."""
    return to_json(value).decode()


def as_json(value: Any) -> str | None:
    return None if value is None else _dumps(value)


def timestamp(value: dt.datetime | None) -> Timestamp:
    ts = Timestamp()
    if value is not None:
        ts.FromDatetime(value)
    return ts


def feedback_context(row: dict[str, Any] | FeedbackItem) -> events_pb2.FeedbackContext:
    """Event context of a stored item (an ORM object or a row mapping read back from the table)."""
    get = row.get if isinstance(row, dict) else (lambda k, d=None: getattr(row, k, d))
    partner_id = get("partner_id")
    return events_pb2.FeedbackContext(
        feedback_id=str(get("id")),
        channel=get("channel") or "",
        touchpoint_id=get("touchpoint_id") or "",
        journey_stage=get("journey_stage") or "",
        org_unit_id=get("org_unit_id") or "",
        customer_key=get("customer_key") or "",
        product_sku=get("product_sku") or "",
        language=get("language") or "",
        occurred_at=timestamp(get("occurred_at")),
        partner_id=str(partner_id) if partner_id else "",
        external_id=get("external_id") or "",
        source_response_id=get("source_response_id") or "",
        agent_id=get("agent_id") or "",
    )
