"""Fuzzing of the NLP service's HTTP API (BentoML, its OpenAPI at /docs.json) with schemathesis: no 5xx, no answer
that violates its schema. The service runs as a real process (`cx-nlp serve-http`) with the tiny model built from
code, on a loopback port (the `cx_nlp_http` fixture of cx_local)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cx_local.fuzz import assert_fuzz_clean

pytestmark = [pytest.mark.slow]

EXAMPLES = int(os.environ.get("CX_FUZZ_EXAMPLES") or 4)
SEED = int(os.environ.get("CX_FUZZ_SEED") or 20261201)
LONG = os.environ.get("CX_FUZZ", "short").lower() == "long"


async def fuzz(url: str, tmp_path: Path, checks: tuple[str, ...], examples: int = EXAMPLES) -> None:
    await assert_fuzz_clean(
        url,
        schema_path="/docs.json",
        checks=checks,
        phases="examples,coverage,fuzzing" if LONG else "examples,fuzzing",
        max_examples=examples,
        seed=SEED,
        exclude_path_regex=r"^/(healthz|livez|readyz|metrics)$",
        report_dir=tmp_path,
        deadline_s=240,
    )


async def test_fuzz_nlp_http_no_server_errors(cx_nlp_http: str, tmp_path: Path) -> None:
    await fuzz(cx_nlp_http, tmp_path, ("not_a_server_error",))


async def test_fuzz_nlp_http_answers_match_their_schema(cx_nlp_http: str, tmp_path: Path) -> None:
    await fuzz(cx_nlp_http, tmp_path, ("response_schema_conformance",), examples=2)
