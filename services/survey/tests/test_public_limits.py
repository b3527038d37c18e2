"""Public endpoints (no login): rate limited per client address + link (429 + Retry-After); bodies capped (413)."""

import uuid

import httpx
from survey_testkit import LOGIC

from cx_local.pytest_plugin import app_client


async def test_public_endpoints_are_rate_limited_per_address_and_link(svc):
    tenant = uuid.uuid4()
    survey_id = await svc.create_published(tenant, LOGIC)
    other_survey = await svc.create_published(tenant, LOGIC)
    inv = (await svc.client.post(f"/v1/surveys/{survey_id}/invitations", json={}, headers=svc.auth(tenant))).json()
    app = svc.app_with(public_rate_per_minute=6, public_rate_burst=3, public_rate_address_factor=2)
    async with app_client(app, svc.tokens) as client:

        def from_address(ip: str, **kw) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=app, client=(ip, 40000))
            return httpx.AsyncClient(transport=transport, base_url="http://testserver", **kw)

        # Opening the link, autosaving and submitting all draw from the same (address, survey) bucket.
        assert (await client.get(f"/s/{survey_id}?lang=en")).status_code == 200
        saved = await client.post(f"/s/{survey_id}/save", data={"_page": "p1", "q_nps": "4"})
        assert saved.status_code == 200, saved.text
        sent = await client.post(
            f"/v1/public/surveys/{survey_id}/responses", json={"answers": {"nps": 10, "more": "x"}}
        )
        assert sent.status_code == 201
        limited = await client.get(f"/s/{survey_id}?lang=en")
        assert limited.status_code == 429
        assert limited.headers["content-type"] == "application/problem+json"
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.json()["status"] == 429
        # Another link (a personal token, another survey) from the same address has its own bucket…
        assert (await client.get(f"/s/{survey_id}?t={inv['token']}&lang=en")).status_code == 200
        assert (await client.get(f"/v1/public/surveys/{other_survey}")).status_code == 200
        # …and another address too; authenticated endpoints are not limited here.
        async with from_address("10.0.0.2") as neighbour:
            assert (await neighbour.get(f"/s/{survey_id}?lang=en")).status_code == 200
        for _ in range(5):
            assert (await client.get("/v1/surveys", headers=svc.auth(tenant))).status_code == 200
        # Rotating made-up survey ids does not escape the address-wide bucket (2 links' worth: 6 requests).
        async with from_address("10.0.0.3") as rotating:
            codes = [(await rotating.get(f"/s/{uuid.uuid4()}?lang=en")).status_code for _ in range(8)]
        assert codes[:6] == [404] * 6
        assert codes[6:] == [429, 429]
        # X-Forwarded-For is ignored unless trusted: a forged header does not buy a fresh bucket.
        forged = await client.get(f"/s/{survey_id}?lang=en", headers={"X-Forwarded-For": "192.0.2.9"})
        assert forged.status_code == 429

    trusted = svc.app_with(public_rate_per_minute=6, public_rate_burst=1, trust_forwarded_for=True)
    async with app_client(trusted, svc.tokens) as client:
        first = await client.get(f"/s/{survey_id}?lang=en", headers={"X-Forwarded-For": "192.0.2.1, 10.0.0.1"})
        again = await client.get(f"/s/{survey_id}?lang=en", headers={"X-Forwarded-For": "192.0.2.1"})
        other = await client.get(f"/s/{survey_id}?lang=en", headers={"X-Forwarded-For": "192.0.2.2"})
        assert [first.status_code, again.status_code, other.status_code] == [200, 429, 200]


async def test_oversized_public_bodies_are_413(svc):
    tenant = uuid.uuid4()
    survey_id = await svc.create_published(tenant, LOGIC)
    big_text = "长" * 100_000  # 300 KB in UTF-8, over the 256 KiB default
    for path in (f"/s/{survey_id}", f"/s/{survey_id}/save"):
        r = await svc.client.post(path, data={"_page": "p1", "q_nps": "3", "q_why_low": big_text})
        assert r.status_code == 413, path
        assert r.headers["content-type"] == "application/problem+json"
    partial = await svc.client.post(f"/v1/public/surveys/{survey_id}/partial", json={"answers": {"why_low": big_text}})
    assert partial.status_code == 413

    # A streamed (chunked) body without Content-Length is counted as it arrives and refused: 413 on the submit route,
    # which reads its body itself (FastAPI's generic handler turned the limit's exception into a 400).
    async def chunks():
        yield b'{"answers": {"why_low": "'
        for _ in range(40):
            yield b"x" * 8192
        yield b'"}}'

    streamed = await svc.client.post(
        f"/v1/public/surveys/{survey_id}/responses", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413, streamed.text
    assert streamed.headers["content-type"] == "application/problem+json"
    assert await svc.sql("SELECT 1 FROM responses") == []
