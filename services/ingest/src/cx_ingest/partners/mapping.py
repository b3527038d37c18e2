"""Field mappings: how a partner's payload becomes a FeedbackIn.

```json
{
  "fields": {"external_id": "id", "text": "content.body", "occurred_at": "created_at",
             "customer_key": "customer.id", "attributes.order_no": "order.no", "scores.rating": "stars"},
  "constants": {"channel": "review", "language": "zh-Hans"},
  "turns": {"path": "messages", "speaker": "role", "text": "content", "offset_ms": "t",
            "speaker_values": {"staff": "agent", "user": "customer"}}
}
```
Paths are dotted, with `[n]` for list positions (`items[0].text`). Targets are FeedbackIn fields; `attributes.<k>`
and `scores.<k>` fill those maps. A mapping is validated when saved and can be tried on a sample payload.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from cx_ingest.feedback.schemas import FeedbackIn

PATH = re.compile(r"^[^.\[\]\s]+(?:\[\d+\])*(?:\.[^.\[\]\s]+(?:\[\d+\])*)*$")
_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
SCALAR_TARGETS = {
    "external_id",
    "channel",
    "text",
    "title",
    "agent_id",
    "touchpoint_id",
    "journey_stage",
    "org_unit_id",
    "customer_key",
    "product_sku",
    "language",
    "occurred_at",
}
MAP_TARGETS = ("attributes.", "scores.")
# Ids a partner may send as numbers: integers are stringified when mapped (`{"id": 1, "cust": 12345}`); external_id
# also floats and booleans, as before.
ID_TARGETS = {"external_id", "customer_key", "org_unit_id", "agent_id", "product_sku", "touchpoint_id"}
TURN_FIELDS = {"speaker", "text", "offset_ms", "at", "seq", "agent_id"}


class TurnsMapping(BaseModel):
    path: str = Field(min_length=1, max_length=200)
    speaker: str = Field(default="speaker", min_length=1, max_length=200)
    text: str = Field(default="text", min_length=1, max_length=200)
    offset_ms: str | None = None
    at: str | None = None
    seq: str | None = None
    agent_id: str | None = None
    speaker_values: dict[str, str] = Field(default_factory=dict, description="partner value -> agent|customer|bot")


class FieldMapping(BaseModel):
    fields: dict[str, str] = Field(default_factory=dict, description="target field -> path in the partner payload")
    constants: dict[str, Any] = Field(default_factory=dict, description="target field -> fixed value")
    turns: TurnsMapping | None = None


class MappingError(ValueError):
    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


def valid_target(target: str) -> bool:
    if target in SCALAR_TARGETS:
        return True
    return any(target.startswith(p) and len(target) > len(p) for p in MAP_TARGETS)


def validate_mapping(mapping: FieldMapping) -> None:
    errors: list[dict[str, str]] = []
    for target, path in mapping.fields.items():
        if not valid_target(target):
            errors.append({"field": f"fields.{target}", "message": "unknown target field"})
        if not PATH.match(path):
            errors.append({"field": f"fields.{target}", "message": f"not a valid path: {path!r}"})
    for target in mapping.constants:
        if not valid_target(target):
            errors.append({"field": f"constants.{target}", "message": "unknown target field"})
    if mapping.turns is not None:
        for name in ("path", "speaker", "text", "offset_ms", "at", "seq", "agent_id"):
            value = getattr(mapping.turns, name)
            if value is not None and not PATH.match(value):
                errors.append({"field": f"turns.{name}", "message": f"not a valid path: {value!r}"})
        for raw, speaker in mapping.turns.speaker_values.items():
            if speaker not in ("agent", "customer", "bot"):
                errors.append({"field": f"turns.speaker_values.{raw}", "message": "must be agent, customer or bot"})
    if "external_id" not in mapping.fields and "external_id" not in mapping.constants:
        errors.append({"field": "fields.external_id", "message": "external_id must be mapped"})
    if "text" not in mapping.fields and mapping.turns is None:
        errors.append({"field": "fields.text", "message": "text or turns must be mapped"})
    if not errors and mapping.constants:
        # Constants must be valid values of their fields: try them on a minimal record.
        probe: dict[str, Any] = {"external_id": "probe", "text": "probe"}
        _assign_all(probe, mapping.constants)
        try:
            FeedbackIn.model_validate(probe)
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"])
                errors.append({"field": f"constants.{loc}", "message": err["msg"]})
    if errors:
        raise MappingError(errors)


_MISSING = object()


def get_path(payload: Any, path: str) -> Any:
    current = payload
    for name, index in _SEGMENT.findall(path):
        if name:
            if not isinstance(current, dict) or name not in current:
                return _MISSING
            current = current[name]
        else:
            i = int(index)
            if not isinstance(current, list) or i >= len(current):
                return _MISSING
            current = current[i]
    return current


def _assign(out: dict[str, Any], target: str, value: Any) -> None:
    for prefix in MAP_TARGETS:
        if target.startswith(prefix):
            out.setdefault(prefix[:-1], {})[target[len(prefix) :]] = value
            return
    out[target] = value


def _assign_all(out: dict[str, Any], values: dict[str, Any]) -> None:
    for target, value in values.items():
        _assign(out, target, value)


def _id_value(value: Any) -> Any:
    """An integer id as its string; anything else (a float, a bool, text) as it is, for validation to judge."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return str(value)
        except ValueError:  # more digits than Python converts (sys.int_info): rejected as not a string
            return value
    return value


def apply_mapping(mapping: FieldMapping, payload: Any) -> dict[str, Any]:
    """The partner payload in FeedbackIn shape (not validated yet); ids are stringified."""
    out: dict[str, Any] = {}
    _assign_all(out, mapping.constants)
    for target, path in mapping.fields.items():
        value = get_path(payload, path)
        if value is _MISSING or value is None:
            continue
        if target == "external_id" and isinstance(value, float | bool):
            value = str(value)
        elif target in ID_TARGETS:
            value = _id_value(value)
        _assign(out, target, value)
    if mapping.turns is not None:
        raw_turns = get_path(payload, mapping.turns.path)
        if isinstance(raw_turns, list):
            turns = []
            for raw in raw_turns:
                turn: dict[str, Any] = {}
                for name in TURN_FIELDS:
                    path = getattr(mapping.turns, name)
                    if path is None:
                        continue
                    value = get_path(raw, path)
                    if value is _MISSING or value is None:
                        continue
                    if name == "speaker":
                        value = mapping.turns.speaker_values.get(str(value), value)
                    elif name == "agent_id":
                        value = _id_value(value)
                    turn[name] = value
                turns.append(turn)
            out["turns"] = turns
    return out
