"""The worker's vector-cache counter: `cx_nlp_vector_cache_lookups_total{result}` on the BentoML /metrics, fed from
the pipeline's running totals after every Analyze and Embed batch."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter

from cx_local.nlp_harness import nlp_http_server
from cx_nlp.metrics import CacheLookups

HERE = Path(__file__).resolve().parent


class _Totals:
    def __init__(self) -> None:
        self.hits = self.misses = 0

    def vector_cache_counts(self) -> tuple[int, int]:
        return self.hits, self.misses


def test_cache_lookups_add_what_came_since_the_last_observation() -> None:
    counter = Counter("lookups", "test", ["result"], registry=CollectorRegistry())
    lookups = CacheLookups(counter)
    totals = _Totals()
    lookups.observe(object())  # a pipeline without caches: nothing
    totals.hits, totals.misses = 5, 2
    lookups.observe(totals)
    totals.hits, totals.misses = 9, 2
    lookups.observe(totals)
    assert counter.labels(result="hit")._value.get() == 9
    assert counter.labels(result="miss")._value.get() == 2


@pytest.fixture
def counting_server(tmp_path: Path) -> Iterator[str]:
    env = {
        "CX_NLP_PIPELINE_FACTORY": "cache_counting_pipeline:load",
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    with nlp_http_server(tmp_path, env=env, timeout=120) as url:
        yield url


async def test_the_worker_counts_vector_cache_lookups(counting_server: str, read_metric: Any) -> None:
    async with httpx.AsyncClient(base_url=counting_server, timeout=30) as client:
        assert (await client.post("/embed", json={"texts": ["排队太久"]})).status_code == 200  # after warm-up

        async def lookups() -> dict[str, float]:
            text = (await client.get("/metrics")).text
            return {
                result: sum(read_metric(text, "cx_nlp_vector_cache_lookups", result=result).values())
                for result in ("hit", "miss")
            }

        before = await lookups()
        assert (await client.post("/embed", json={"texts": ["good"]})).status_code == 200
        body = {"items": [{"text": "物流太慢", "tasks": ["sentiment"]}]}
        assert (await client.post("/analyze", json=body)).status_code == 200
        after = await lookups()
    assert after["hit"] - before["hit"] == 6 and after["miss"] - before["miss"] == 2
