import uuid

import pytest

from cx_local.pytest_plugin import TokenMinter


def auth(tokens: TokenMinter, tenant: uuid.UUID, scopes: tuple[str, ...] = ("org:*",)) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.mint(tenant, scopes=scopes)}"}


async def test_ops_endpoints(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "nats": "ok"}
    metrics = await client.get("/metrics")
    assert "cx_http_requests_total" in metrics.text
    assert (await client.get("/openapi.json")).json()["info"]["title"] == "CX gateway service"


async def test_create_get_list_with_cursor(client, cx_tokens):
    tenant = uuid.uuid4()
    headers = auth(cx_tokens, tenant)
    ids = []
    for i in range(3):
        created = await client.post("/v1/org-units", json={"title": f"NPS {i}"}, headers=headers)
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    fetched = await client.get(f"/v1/org-units/{ids[0]}", headers=headers)
    assert fetched.json()["title"] == "NPS 0"
    page1 = (await client.get("/v1/org-units?limit=2", headers=headers)).json()
    page2 = (await client.get(f"/v1/org-units?limit=2&cursor={page1['next_cursor']}", headers=headers)).json()
    assert [s["id"] for s in page1["items"] + page2["items"]] == sorted(ids)
    assert page2["next_cursor"] is None


async def test_tenant_isolation(client, cx_tokens):
    tenant_a, tenant_b = uuid.uuid4(), uuid.uuid4()
    created = await client.post("/v1/org-units", json={"title": "A only"}, headers=auth(cx_tokens, tenant_a))
    org_unit_id = created.json()["id"]
    other = await client.get(f"/v1/org-units/{org_unit_id}", headers=auth(cx_tokens, tenant_b))
    assert other.status_code == 404
    assert (await client.get("/v1/org-units", headers=auth(cx_tokens, tenant_b))).json()["items"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [({"title": ""}, "title"), ({"title": "x", "default_language": "fr"}, "default_language"), ({}, "title")],
)
async def test_bad_input_is_problem_json_naming_the_field(client, cx_tokens, body, field):
    response = await client.post("/v1/org-units", json=body, headers=auth(cx_tokens, uuid.uuid4()))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert problem["errors"][0]["field"] == field
    assert problem["detail"].startswith(field)


async def test_auth_required_and_scopes_enforced(client, cx_tokens):
    missing = await client.get("/v1/org-units")
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    read_only = auth(cx_tokens, uuid.uuid4(), scopes=("org:read",))
    assert (await client.post("/v1/org-units", json={"title": "x"}, headers=read_only)).status_code == 403
    assert (await client.get("/v1/org-units", headers={"Authorization": "Bearer nonsense"})).status_code == 401
