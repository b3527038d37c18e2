"""Fuzzing of the NLP service's HTTP API (BentoML, its OpenAPI at /docs.json) with schemathesis: no 5xx, no answer
that violates its schema. The service runs as a real process (`cx-nlp serve-http`) with the tiny model built from
code, on a loopback port."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cx_local.fuzz import assert_fuzz_clean
from cx_local.ports import free_port
from cx_local.procs import spawn, stop

pytestmark = [pytest.mark.slow]

EXAMPLES = int(os.environ.get("CX_FUZZ_EXAMPLES") or 4)
SEED = int(os.environ.get("CX_FUZZ_SEED") or 20261201)
LONG = os.environ.get("CX_FUZZ", "short").lower() == "long"


@pytest.fixture(scope="module")
def nlp_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    binary = str(Path(sys.executable).with_name("cx-nlp"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CX_")}
    env.update(CX_NLP_MODEL="tiny", CX_NLP_MODEL_DIR=str(tmp_path_factory.mktemp("nlp-model")), PYTHONUNBUFFERED="1")
    log = (tmp_path_factory.mktemp("nlp-log") / "nlp-http.log").open("wb")
    proc = spawn([binary, "serve-http", "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=log.fileno())
    print(f"nlp-http log: {log.name}")
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, "cx-nlp serve-http exited while starting"
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "cx-nlp serve-http not ready after 120s"
            time.sleep(0.3)
        yield url
    finally:
        stop(proc, timeout=15)
        log.close()


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


async def test_fuzz_nlp_http_no_server_errors(nlp_http: str, tmp_path: Path) -> None:
    await fuzz(nlp_http, tmp_path, ("not_a_server_error",))


@pytest.mark.xfail(
    strict=True,
    reason="nlp bug: every 400 of the BentoML HTTP API (invalid input on /analyze, /embed, /cluster, /info, "
    "/register_codebook) answers `detail` as a list of pydantic errors while its /docs.json documents `detail` as a "
    "string (and it is not problem+json naming the field)",
)
async def test_fuzz_nlp_http_answers_match_their_schema(nlp_http: str, tmp_path: Path) -> None:
    await fuzz(nlp_http, tmp_path, ("response_schema_conformance",), examples=2)
