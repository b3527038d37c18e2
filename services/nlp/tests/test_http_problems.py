"""The BentoML HTTP service answers its errors as problem+json naming the field, and documents that shape."""

from __future__ import annotations

import httpx

from cx_nlp.http_problems import problem_from_bentoml

PROBLEM = "application/problem+json"


async def test_invalid_body_is_a_problem_naming_the_field(http_url: str) -> None:
    async with httpx.AsyncClient(base_url=http_url, timeout=30) as http:
        r = await http.post("/analyze", json={"items": [{"text": 5, "tasks": ["sentiment"]}]})
        missing = await http.post("/embed", json={})
        docs = (await http.get("/docs.json")).json()
    assert r.status_code == 400 and r.headers["content-type"].startswith(PROBLEM), r.text
    body = r.json()
    assert body["status"] == 400 and body["title"] == "Validation failed"
    assert body["field"] == "items.0.text" and body["detail"].startswith("items.0.text: ")
    assert body["errors"][0] == {
        "field": "items.0.text",
        "message": "Input should be a valid string",
        "type": "string_type",
    }
    assert missing.status_code == 400 and missing.json()["field"] == "texts"
    for path in ("/analyze", "/embed", "/cluster", "/register_codebook", "/info"):
        documented = docs["paths"][path]["post"]["responses"]["400"]["content"]
        assert list(documented) == [PROBLEM], path
        assert documented[PROBLEM]["schema"]["properties"]["detail"] == {"type": "string"}


def test_bentoml_error_shapes_become_problems() -> None:
    invalid_argument = problem_from_bentoml(400, b'[{"error": "text is empty"}]')
    assert invalid_argument == {
        "type": "about:blank",
        "title": "Bad Request",
        "status": 400,
        "detail": "text is empty",
        "error": "text is empty",
    }
    starlette = problem_from_bentoml(503, b'{"detail": "Service is not ready"}')
    assert starlette["detail"] == "Service is not ready" and starlette["title"] == "Service Unavailable"
    plain = problem_from_bentoml(404, b"Not Found")
    assert plain["status"] == 404 and plain["detail"] == "Not Found"
