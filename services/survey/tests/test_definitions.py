import copy
import uuid

import pytest

from cx_survey.surveys.templates import TEMPLATES


def t(text: str) -> dict[str, str]:
    return {"zh-Hans": text, "en": text}


async def test_schema_templates_publish_freezes_versions(svc):
    tenant = uuid.uuid4()
    h = svc.auth(tenant)
    schema = (await svc.client.get("/v1/surveys/definition-schema")).json()
    assert schema["title"] == "CX survey definition"
    assert "pages" in schema["properties"]
    names = [x["name"] for x in (await svc.client.get("/v1/surveys/templates", headers=h)).json()]
    assert names == ["nps", "csat_after_service", "post_purchase"]

    created = await svc.client.post("/v1/surveys", json={"title": "NPS", "template": "nps"}, headers=h)
    assert created.status_code == 201, created.text
    survey = created.json()
    assert survey["status"] == "draft"
    assert survey["definition"]["pages"][0]["questions"][0]["type"] == "nps"
    # Not published → respondents get 409
    draft = await svc.client.post(f"/v1/public/surveys/{survey['id']}/responses", json={"answers": {"nps": 5}})
    assert draft.status_code == 409
    v1 = await svc.client.post(f"/v1/surveys/{survey['id']}/publish", headers=h)
    assert v1.status_code == 201
    assert v1.json()["version"] == 1
    edited = copy.deepcopy(survey["definition"])
    edited["pages"][0]["questions"][0]["title"] = t("changed")
    patched = await svc.client.patch(f"/v1/surveys/{survey['id']}", json={"definition": edited}, headers=h)
    assert patched.status_code == 200, patched.text
    frozen = (await svc.client.get(f"/v1/surveys/{survey['id']}/versions/1", headers=h)).json()
    assert frozen["definition"]["pages"][0]["questions"][0]["title"] != t("changed")
    # Responses point at the version that was current.
    answered = await svc.client.post(f"/v1/public/surveys/{survey['id']}/responses", json={"answers": {"nps": 9}})
    assert answered.json()["version"] == 1
    v2 = await svc.client.post(f"/v1/surveys/{survey['id']}/publish", headers=h)
    assert v2.json()["version"] == 2
    answered2 = await svc.client.post(f"/v1/public/surveys/{survey['id']}/responses", json={"answers": {"nps": 9}})
    assert answered2.json()["version"] == 2
    versions = (await svc.client.get(f"/v1/surveys/{survey['id']}/versions", headers=h)).json()
    assert [v["version"] for v in versions] == [1, 2]
    # export → import round trip
    exported = (await svc.client.get(f"/v1/surveys/{survey['id']}/export", headers=h)).json()
    assert exported["format"] == "cx-survey/v1"
    imported = await svc.client.post("/v1/surveys/import", json=exported, headers=h)
    assert imported.status_code == 201
    assert imported.json()["definition"] == exported["definition"]
    # closed → 410
    await svc.client.post(f"/v1/surveys/{survey['id']}/close", headers=h)
    closed = await svc.client.post(f"/v1/public/surveys/{survey['id']}/responses", json={"answers": {"nps": 9}})
    assert closed.status_code == 410
    assert closed.headers["content-type"] == "application/problem+json"
    audit = (await svc.client.get(f"/v1/audit?entity_id={survey['id']}", headers=h)).json()
    assert [e["action"] for e in audit] == [
        "survey.created",
        "survey.published",
        "survey.updated",
        "survey.published",
        "survey.closed",
    ]
    assert audit[2]["before"]["definition"]["pages"][0]["questions"][0]["title"] != t("changed")
    assert audit[2]["after"]["definition"]["pages"][0]["questions"][0]["title"] == t("changed")
    assert (audit[4]["before"]["status"], audit[4]["after"]["status"]) == ("published", "closed")
    assert all(e["actor"] == "user-1" for e in audit)


@pytest.mark.parametrize("name", list(TEMPLATES))
async def test_every_template_is_valid_and_publishable(svc, name):
    tenant = uuid.uuid4()
    created = await svc.client.post("/v1/surveys", json={"title": name, "template": name}, headers=svc.auth(tenant))
    assert created.status_code == 201
    assert (
        await svc.client.post(f"/v1/surveys/{created.json()['id']}/publish", headers=svc.auth(tenant))
    ).status_code == 201


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d["pages"][0]["questions"][0].update(type="single_choice"), "needs choices"),
        (lambda d: d["pages"][0].update(jumps=[{"when": {"all": []}, "to": "nowhere"}]), "later page"),
        (lambda d: d["pages"][0]["questions"].append(dict(d["pages"][0]["questions"][0])), "unique"),
        (
            lambda d: d["pages"][0]["questions"][0].update(
                display_if={"all": [{"question": "reason", "op": "answered"}]}
            ),
            "earlier question",
        ),
        (lambda d: d["pages"][0]["questions"][0].update(type="essay"), "type"),
        (lambda d: d.update(title={}), "at least one"),
    ],
)
async def test_invalid_definitions_are_422_naming_the_field(svc, mutate, needle):
    definition = copy.deepcopy(TEMPLATES["nps"])
    mutate(definition)
    r = await svc.client.post(
        "/v1/surveys", json={"title": "x", "definition": definition}, headers=svc.auth(uuid.uuid4())
    )
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["errors"][0]["field"].startswith("definition")
    assert needle in r.text


async def test_publish_without_definition_and_tenant_isolation(svc):
    a, b = uuid.uuid4(), uuid.uuid4()
    created = (await svc.client.post("/v1/surveys", json={"title": "empty"}, headers=svc.auth(a))).json()
    r = await svc.client.post(f"/v1/surveys/{created['id']}/publish", headers=svc.auth(a))
    assert r.status_code == 422
    assert r.json()["field"] == "definition"
    assert (await svc.client.post(f"/v1/surveys/{created['id']}/publish", headers=svc.auth(b))).status_code == 404
    assert (await svc.client.get(f"/v1/surveys/{created['id']}/export", headers=svc.auth(b))).status_code == 404
