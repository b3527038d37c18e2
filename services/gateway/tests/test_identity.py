import asyncio

import asyncpg
import jwt
import pytest

from cx_common.auth import JWTVerifier
from cx_gateway.identity.roles import scopes_for


async def test_ops_endpoints(gw):
    assert (await gw.client.get("/healthz")).json() == {"status": "ok"}
    ready = await gw.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert (await gw.client.get("/openapi.json")).json()["info"]["title"] == "CX gateway service"


async def test_login_issues_rs256_token_that_cx_common_verifies(gw, demo):
    pair = await gw.login("store.manager@demo.cx")
    assert pair["token_type"] == "Bearer" and pair["refresh_token"].startswith("cxrt_")
    jwks = (await gw.client.get("/api/v1/auth/jwks")).json()
    assert jwks["keys"] and all("d" not in k for k in jwks["keys"])  # public halves only
    assert jwt.get_unverified_header(pair["access_token"])["alg"] == "RS256"
    principal = await JWTVerifier(issuer="cx-gateway", audience="cx", jwks=jwks).verify(pair["access_token"])
    assert principal.tenant_id == demo.tenant_id
    assert principal.role == "manager"
    assert principal.org_unit_id == str(demo.units["S-SH-01"])
    assert principal.user_id == str(demo.users["store.manager@demo.cx"])
    assert principal.scopes == frozenset(scopes_for("manager"))
    claims = principal.claims
    assert claims["iss"] == "cx-gateway" and claims["aud"] == "cx" and claims["exp"] > claims["iat"]
    me = await gw.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert me.status_code == 200 and me.json()["email"] == "store.manager@demo.cx"


async def test_private_keys_are_stored_encrypted(gw, demo):
    conn = await asyncpg.connect(gw.db_admin_url)
    try:
        blob = await conn.fetchval("SELECT private_key_enc FROM gateway.signing_keys LIMIT 1")
    finally:
        await conn.close()
    assert b"PRIVATE KEY" not in blob


async def test_wrong_credentials_give_the_same_401_and_lock_out(gw, demo):
    attempts = [
        {"tenant": "demo", "email": "agent@demo.cx", "password": "wrong-password"},
        {"tenant": "demo", "email": "nobody@demo.cx", "password": "cx-demo-agent"},
        {"tenant": "nope", "email": "agent@demo.cx", "password": "cx-demo-agent"},
    ]
    bodies = []
    for body in attempts:
        r = await gw.client.post("/api/v1/auth/login", json=body)
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/problem+json"
        bodies.append(r.json()["detail"])
    assert len(set(bodies)) == 1
    for _ in range(gw.settings.login_max_failures):
        await gw.client.post("/api/v1/auth/login", json=attempts[0])
    locked = await gw.client.post(
        "/api/v1/auth/login", json={"tenant": "demo", "email": "agent@demo.cx", "password": "cx-demo-agent"}
    )
    assert locked.status_code == 401 and locked.json()["detail"] == bodies[0]
    # another user is unaffected
    assert (
        await gw.client.post(
            "/api/v1/auth/login", json={"tenant": "demo", "email": "viewer@demo.cx", "password": "cx-demo-viewer"}
        )
    ).status_code == 200


async def test_refresh_rotates_and_reuse_revokes_the_family(gw, demo):
    first = await gw.login("analyst@demo.cx")
    second = await gw.client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200, second.text
    new_refresh = second.json()["refresh_token"]
    assert new_refresh != first["refresh_token"]
    reused = await gw.client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401
    # the theft detection revoked the rotated token as well
    assert (await gw.client.post("/api/v1/auth/refresh", json={"refresh_token": new_refresh})).status_code == 401


async def test_logout_revokes_refresh(gw, demo):
    pair = await gw.login("viewer@demo.cx")
    assert (
        await gw.client.post("/api/v1/auth/logout", json={"refresh_token": pair["refresh_token"]})
    ).status_code == 204
    r = await gw.client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert r.status_code == 401


async def test_key_rotation_keeps_old_tokens_valid_and_publishes_both(gw, demo):
    owner = await gw.login("owner@demo.cx")
    auth = {"Authorization": f"Bearer {owner['access_token']}"}
    old_kid = jwt.get_unverified_header(owner["access_token"])["kid"]
    viewer = await gw.headers("viewer@demo.cx")
    assert (await gw.client.post("/api/v1/auth/keys:rotate", headers=viewer)).status_code == 403
    rotated = await gw.client.post("/api/v1/auth/keys:rotate", headers=auth)
    assert rotated.status_code == 200, rotated.text
    new_kid = rotated.json()["kid"]
    kids = {k["kid"] for k in (await gw.client.get("/api/v1/auth/jwks")).json()["keys"]}
    assert {old_kid, new_kid} <= kids
    fresh = await gw.login("owner@demo.cx")
    assert jwt.get_unverified_header(fresh["access_token"])["kid"] == new_kid
    assert (await gw.client.get("/api/v1/auth/me", headers=auth)).status_code == 200


async def test_expired_and_forged_tokens_are_401(gw, demo, cx_tokens):
    forged = cx_tokens.mint(demo.tenant_id, org_unit_id=str(demo.units["HQ"]))
    r = await gw.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401
    gw.settings.access_token_ttl_s = 1
    pair = await gw.login("viewer@demo.cx")
    await asyncio.sleep(2.1)
    expired = await gw.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]


async def test_api_tokens_are_hashed_scoped_and_revocable(gw, demo):
    admin = await gw.headers("admin@demo.cx")
    created = await gw.client.post(
        "/api/v1/api-tokens",
        json={"name": "kiosk app", "role": "viewer", "org_unit_id": str(demo.units["S-HZ-01"])},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    assert token.startswith("cxat_")
    conn = await asyncpg.connect(gw.db_admin_url)
    try:
        stored = await conn.fetchval("SELECT token_hash FROM gateway.api_tokens")
    finally:
        await conn.close()
    assert token not in stored
    app = {"Authorization": f"Bearer {token}"}
    me = (await gw.client.get("/api/v1/auth/me", headers=app)).json()
    assert me["role"] == "viewer" and me["org_unit_id"] == str(demo.units["S-HZ-01"])
    units = (await gw.client.get("/api/v1/org-units", headers=app)).json()["items"]
    assert [u["code"] for u in units] == ["S-HZ-01"]
    # cannot escalate: viewer token may not write, nor mint tokens
    assert (await gw.client.post("/api/v1/api-tokens", json={"name": "x"}, headers=app)).status_code == 403
    bad = await gw.client.post(
        "/api/v1/api-tokens", json={"name": "x", "role": "viewer", "scopes": ["org:write"]}, headers=admin
    )
    assert bad.status_code == 422 and bad.json()["field"] == "scopes"
    listed = (await gw.client.get("/api/v1/api-tokens", headers=admin)).json()["items"]
    assert [t["prefix"] for t in listed] == [created.json()["prefix"]] and "token" not in listed[0]
    assert (await gw.client.delete(f"/api/v1/api-tokens/{created.json()['id']}", headers=admin)).status_code == 204
    assert (await gw.client.get("/api/v1/auth/me", headers=app)).status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tenant": "demo", "email": "not-an-email", "password": "x"}, "email"),
        ({"tenant": "demo", "email": "a@b.cx"}, "password"),
        ({"email": "a@b.cx", "password": "x"}, "tenant"),
    ],
)
async def test_login_bad_input_names_the_field(gw, body, field):
    r = await gw.client.post("/api/v1/auth/login", json=body)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["field"] == field


async def test_users_create_roles_and_events(gw, demo):
    manager = await gw.headers("east.manager@demo.cx")
    # a region manager cannot create admins, nor users outside the region
    r = await gw.client.post(
        "/api/v1/users",
        json={
            "email": "x@demo.cx",
            "display_name": "X",
            "password": "long-enough-pw",
            "role": "agent",
            "org_unit_id": str(demo.units["S-SH-01"]),
        },
        headers=manager,
    )
    assert r.status_code == 403  # managers hold users:read only
    admin = await gw.headers("admin@demo.cx")
    body = {
        "email": "New.Agent@Demo.cx",
        "display_name": "新客服",
        "password": "long-enough-pw",
        "role": "agent",
        "org_unit_id": str(demo.units["S-GZ-01"]),
    }
    created = await gw.client.post("/api/v1/users", json=body, headers=admin)
    assert created.status_code == 201, created.text
    assert created.json()["email"] == "new.agent@demo.cx"
    dup = await gw.client.post("/api/v1/users", json=body, headers=admin)
    assert dup.status_code == 409
    owner_grant = await gw.client.post(
        "/api/v1/users", json={**body, "email": "o@demo.cx", "role": "owner"}, headers=admin
    )
    assert owner_grant.status_code == 403
    login = await gw.client.post(
        "/api/v1/auth/login", json={"tenant": "demo", "email": "new.agent@demo.cx", "password": "long-enough-pw"}
    )
    assert login.status_code == 200
    conn = await asyncpg.connect(gw.db_admin_url)
    try:
        types = [r["event_type"] for r in await conn.fetch("SELECT event_type FROM gateway.outbox")]
    finally:
        await conn.close()
    # 8 units, then the 4 stores again when the demo names their managers
    assert types.count("org.unit.upserted") == 12 and types.count("org.user.upserted") == 8


async def test_users_are_listed_within_the_org_subtree(gw, demo):
    east = await gw.headers("east.manager@demo.cx")
    emails = {u["email"] for u in (await gw.client.get("/api/v1/users", headers=east)).json()["items"]}
    assert emails == {"east.manager@demo.cx", "store.manager@demo.cx", "agent@demo.cx"}
    viewer_id = demo.users["viewer@demo.cx"]
    assert (await gw.client.get(f"/api/v1/users/{viewer_id}", headers=east)).status_code == 404


async def test_tenant_isolation(gw, demo):
    async with gw.app.state.runtime.sessions() as session, session.begin():
        from cx_gateway.identity import service
        from cx_gateway.identity.schemas import TenantCreate

        await service.create_tenant(
            session,
            TenantCreate(slug="other", name="Other", owner_email="boss@other.cx", owner_password="other-password"),
            gw.settings,
        )
    other = {
        "Authorization": f"Bearer {(await gw.login('boss@other.cx', 'other-password', tenant='other'))['access_token']}"
    }
    units = (await gw.client.get("/api/v1/org-units", headers=other)).json()["items"]
    assert [u["code"] for u in units] == ["HQ"] and units[0]["id"] != str(demo.units["HQ"])
    assert (await gw.client.get(f"/api/v1/org-units/{demo.units['S-SH-01']}", headers=other)).status_code == 404
    assert (await gw.client.get(f"/api/v1/users/{demo.users['agent@demo.cx']}", headers=other)).status_code == 404
    # the demo owner cannot log in to the other tenant
    r = await gw.client.post(
        "/api/v1/auth/login", json={"tenant": "other", "email": "owner@demo.cx", "password": "cx-demo-owner"}
    )
    assert r.status_code == 401


async def test_platform_creates_tenants_with_the_platform_secret_only(gw):
    body = {"slug": "acme", "name": "Acme 零售", "owner_email": "ceo@acme.cx", "owner_password": "acme-password-1"}
    assert (await gw.client.post("/api/v1/tenants", json=body)).status_code == 401
    wrong = await gw.client.post("/api/v1/tenants", json=body, headers={"X-Cx-Platform-Secret": "guess"})
    assert wrong.status_code == 401
    secret = gw.settings.internal_secret.get_secret_value()
    created = await gw.client.post("/api/v1/tenants", json=body, headers={"X-Cx-Platform-Secret": secret})
    assert created.status_code == 201, created.text
    again = await gw.client.post("/api/v1/tenants", json=body, headers={"X-Cx-Platform-Secret": secret})
    assert again.status_code == 409
    pair = await gw.login("ceo@acme.cx", "acme-password-1", tenant="acme")
    me = (await gw.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {pair['access_token']}"})).json()
    assert me["role"] == "owner" and me["org_unit_id"] == created.json()["root_org_unit_id"]


async def test_memberships_pick_the_role_and_scope_at_login(gw, demo):
    admin = await gw.headers("admin@demo.cx")
    agent = demo.users["agent@demo.cx"]
    added = await gw.client.post(
        f"/api/v1/users/{agent}/memberships",
        json={"org_unit_id": str(demo.units["R-SOUTH"]), "role": "viewer"},
        headers=admin,
    )
    assert added.status_code == 201, added.text
    assert len(added.json()["memberships"]) == 2
    default = await gw.login("agent@demo.cx")
    south = await gw.client.post(
        "/api/v1/auth/login",
        json={
            "tenant": "demo",
            "email": "agent@demo.cx",
            "password": "cx-demo-agent",
            "org_unit_id": str(demo.units["R-SOUTH"]),
        },
    )
    assert south.status_code == 200
    verifier = JWTVerifier(issuer="cx-gateway", audience="cx", jwks=(await gw.client.get("/api/v1/auth/jwks")).json())
    p1 = await verifier.verify(default["access_token"])
    p2 = await verifier.verify(south.json()["access_token"])
    assert (p1.role, p1.org_unit_id) == ("agent", str(demo.units["S-SH-01"]))
    assert (p2.role, p2.org_unit_id) == ("viewer", str(demo.units["R-SOUTH"]))
    nowhere = await gw.client.post(
        "/api/v1/auth/login",
        json={
            "tenant": "demo",
            "email": "agent@demo.cx",
            "password": "cx-demo-agent",
            "org_unit_id": str(demo.units["R-EAST"]),
        },
    )
    assert nowhere.status_code == 401


@pytest.mark.parametrize("gateway_overrides", [{"log_level": "DEBUG"}])
async def test_secrets_never_reach_the_logs(gw, demo, caplog, capfd):
    caplog.set_level("DEBUG")
    password = "cx-demo-owner"
    pair = await gw.login("owner@demo.cx", password)
    wrong = await gw.client.post(
        "/api/v1/auth/login", json={"tenant": "demo", "email": "owner@demo.cx", "password": "wrong-password-77"}
    )
    assert wrong.status_code == 401
    refreshed = (await gw.client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})).json()
    headers = {"Authorization": f"Bearer {refreshed['access_token']}"}
    created = await gw.client.post(
        "/api/v1/api-tokens",
        json={"name": "app", "role": "viewer", "org_unit_id": str(demo.units["HQ"])},
        headers=headers,
    )
    secret = created.json()["token"]
    assert (await gw.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {secret}"})).status_code == 200
    console = await gw.client.post(
        "/console/login", data={"tenant": "demo", "email": "owner@demo.cx", "password": password, "lang": "en"}
    )
    assert console.status_code == 303
    out, err = capfd.readouterr()
    logs = caplog.text + out + err
    assert "/api/v1/auth/login" in logs  # requests were logged ...
    needles = {
        "password": password,
        "wrong password": "wrong-password-77",
        "access token": pair["access_token"],
        "refreshed access token": refreshed["access_token"],
        "refresh token": pair["refresh_token"],
        "API token": secret,
        "key encryption secret": gw.settings.key_encryption_secret.get_secret_value(),
        "platform secret": gw.settings.internal_secret.get_secret_value(),
    }
    leaked = [name for name, value in needles.items() if value and value in logs]
    assert leaked == []  # ... without any secret
