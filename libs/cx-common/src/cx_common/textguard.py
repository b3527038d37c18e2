"""Refuse text that Postgres cannot store — U+0000 (NUL) and unpaired UTF-16 surrogates — with a 422 naming the field.

Postgres `text`/`jsonb` reject NUL and asyncpg cannot encode a lone surrogate, so without this check such input got
as far as the INSERT and came back as a 500. The check is cheap for ordinary requests: JSON bodies are only parsed
when a byte scan finds `\\u0000` or a surrogate escape, and only JSON and form bodies (never uploads) are read here;
the body size limit (an outer middleware) has bounded them already.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cx_common.errors import problem_response

_SUSPECT_JSON = re.compile(rb"\\u0000|\\u[dD][89a-fA-F][0-9a-fA-F]{2}|\x00")
_SURROGATE = re.compile("[\ud800-\udfff]")


def bad_text_reason(value: str) -> str | None:
    if "\x00" in value:
        return "must not contain the NUL character (U+0000)"
    if _SURROGATE.search(value):
        return "must not contain an unpaired UTF-16 surrogate"
    return None


def find_bad_text(value: Any, path: tuple[str, ...] = ()) -> tuple[str, str] | None:
    """The first (field path, reason) of a string (or object key) in a decoded JSON value that cannot be stored."""
    if isinstance(value, str):
        reason = bad_text_reason(value)
        return (".".join(path), reason) if reason else None
    if isinstance(value, dict):
        for key, item in value.items():
            key_reason = bad_text_reason(str(key))
            if key_reason:
                return ".".join((*path, str(key).replace("\x00", "\\u0000"))), f"field name {key_reason}"
            if (found := find_bad_text(item, (*path, str(key)))) is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if (found := find_bad_text(item, (*path, str(index)))) is not None:
                return found
    return None


def json_may_hold_bad_text(body: bytes) -> bool:
    """A byte scan: False means no string of this JSON body can hold NUL or a lone surrogate (the common case)."""
    if b"\\u" not in body and b"\x00" not in body:
        return False
    return _SUSPECT_JSON.search(body) is not None


class TextGuardMiddleware:
    """`exempt_paths`: request paths (regular expressions, matched in full) whose handlers check text themselves,
    e.g. batch endpoints that reject only the records holding such text."""

    def __init__(self, app: ASGIApp, exempt_paths: Sequence[str] = ()) -> None:
        self.app = app
        self.exempt = re.compile("|".join(f"(?:{p})" for p in exempt_paths)) if exempt_paths else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope.get("path", ""):
            await self._refuse(scope, receive, send, "path", "must not contain the NUL character (U+0000)")
            return
        query = scope.get("query_string", b"")
        if b"%00" in query or b"\x00" in query:
            found = self._in_form(query) or ("query", "must not contain the NUL character (U+0000)")
            await self._refuse(scope, receive, send, *found)
            return
        content_type = dict(scope.get("headers") or []).get(b"content-type", b"").split(b";")[0].strip().lower()
        is_json = content_type == b"application/json" or content_type.endswith(b"+json")
        is_form = content_type == b"application/x-www-form-urlencoded"
        exempt = self.exempt is not None and self.exempt.fullmatch(scope.get("path", "")) is not None
        if exempt or not (is_json or is_form) or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        body, disconnected = await self._read(receive)
        if disconnected:
            return
        bad = self._in_json(body) if is_json else self._in_form(body)
        if bad is not None:
            await self._refuse(scope, receive, send, *bad)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _read(receive: Receive) -> tuple[bytes, bool]:
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", True
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks), False

    @staticmethod
    def _in_json(body: bytes) -> tuple[str, str] | None:
        if not json_may_hold_bad_text(body):
            return None
        try:
            decoded = json.loads(body)
        except ValueError:
            return None  # malformed JSON is the framework's to report
        found = find_bad_text(decoded)
        if found is None:
            return None
        return (found[0] or "body", found[1])

    @staticmethod
    def _in_form(body: bytes) -> tuple[str, str] | None:
        if b"%00" not in body and b"\x00" not in body:
            return None
        for key, value in parse_qsl(body.decode("latin-1"), keep_blank_values=True):
            if "\x00" in key or "\x00" in value:
                return (key.replace("\x00", "\\u0000") or "body", "must not contain the NUL character (U+0000)")
        return None

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, field: str, reason: str) -> None:
        response = problem_response(
            422,
            f"{field}: {reason}",
            title="Validation failed",
            instance=scope.get("path"),
            errors=[{"field": field, "message": reason, "type": "text_not_storable"}],
        )
        await response(scope, receive, send)
