"""Optimistic locking over HTTP: `ETag: "<version>"` on reads, `If-Match` (or a `version` field) on writes."""

from __future__ import annotations

from fastapi import Response

from cx_common.errors import Problem


def etag(version: int) -> str:
    return f'"{version}"'


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = etag(version)


def expected_version(if_match: str | None, body_version: int | None) -> int:
    if if_match:
        raw = if_match.strip()
        if raw.startswith("W/"):
            raw = raw[2:]
        raw = raw.strip('"')
        if not raw.isdigit():
            raise Problem(400, "If-Match: expected the ETag returned by a read", field="If-Match")
        return int(raw)
    if body_version is not None:
        return body_version
    raise Problem(428, "send If-Match (or a version field) with the version you read", field="If-Match")


def check_version(current: int, expected: int, what: str) -> None:
    if current != expected:
        raise Problem(
            409,
            f"{what} was changed by someone else (version {current}, you sent {expected}); reload and retry",
            current_version=current,
        )
