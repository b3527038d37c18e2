"""Opaque cursor pagination: the cursor encodes the sort key of the last row returned."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from cx_common.errors import Problem

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` to get the next page; null at the end")


def encode_cursor(values: dict[str, Any]) -> str:
    raw = json.dumps(values, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


NOT_OURS = "cursor: not a cursor returned by this API"
V = TypeVar("V")


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(400, NOT_OURS, field="cursor") from exc
    if not isinstance(value, dict):
        raise Problem(400, NOT_OURS, field="cursor")
    return value


def cursor_value(cursor: str | None, parse: Callable[[Any], V], key: str = "id") -> V | None:
    """`parse` of the value under `key` of a cursor (None: no cursor). A cursor that decodes but carries no such
    value (tampered with, or from another endpoint) is a 400 like an undecodable one, never a 500."""
    after = decode_cursor(cursor)
    if after is None:
        return None
    try:
        return parse(after[key])
    except (KeyError, TypeError, ValueError) as exc:
        raise Problem(400, NOT_OURS, field="cursor") from exc


def cursor_uuid(cursor: str | None, key: str = "id") -> uuid.UUID | None:
    return cursor_value(cursor, lambda v: uuid.UUID(str(v)), key)


def clamp_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    return max(1, min(MAX_LIMIT, limit))
