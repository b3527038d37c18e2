import time
import uuid

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI

from cx_common.auth import JWTVerifier, Principal, require_scopes
from cx_common.errors import Problem, install_problem_handlers
from cx_local.pytest_plugin import TokenMinter


async def test_verify_good_token(cx_tokens: TokenMinter):
    tenant = uuid.uuid4()
    token = cx_tokens.mint(tenant, role="manager", scopes=("tickets:read",), org_unit_id="store-1")
    principal = await cx_tokens.verifier().verify(token)
    assert principal.tenant_id == tenant
    assert principal.role == "manager"
    assert principal.org_unit_id == "store-1"
    assert principal.has("tickets:read")
    assert not principal.has("tickets:write")


@pytest.mark.parametrize(
    "mutate",
    [
        {"exp": int(time.time()) - 10},
        {"aud": "someone-else"},
        {"iss": "evil"},
        {"tid": "not-a-uuid"},
    ],
)
async def test_reject_bad_claims(cx_tokens: TokenMinter, mutate):
    now = int(time.time())
    claims = {"iss": "cx-gateway", "aud": "cx", "sub": "u", "tid": str(uuid.uuid4()), "iat": now, "exp": now + 60}
    claims.update(mutate)
    token = jwt.encode(claims, cx_tokens._key, algorithm="RS256", headers={"kid": cx_tokens.kid})
    with pytest.raises(Problem) as info:
        await cx_tokens.verifier().verify(token)
    assert info.value.status == 401


async def test_reject_token_from_unknown_key(cx_tokens: TokenMinter):
    other = TokenMinter()
    with pytest.raises(Problem) as info:
        await cx_tokens.verifier().verify(other.mint(uuid.uuid4()))
    assert info.value.status == 401


async def test_keys_fetched_from_jwks_url_and_refetched_on_rotation():
    first, second = TokenMinter(), TokenMinter()
    served = {"jwks": first.jwks}
    app = FastAPI()

    @app.get("/jwks")
    async def jwks() -> dict:
        return served["jwks"]

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
        verifier = JWTVerifier(issuer="cx-gateway", audience="cx", jwks_url="http://gw/jwks")

        async def fetch() -> None:
            verifier._load((await client.get("/jwks")).json())

        verifier._refresh = fetch  # route the fetch through the in-process gateway app
        assert (await verifier.verify(first.mint(uuid.uuid4()))).role == "admin"
        served["jwks"] = {"keys": first.jwks["keys"] + second.jwks["keys"]}  # key rotation
        assert (await verifier.verify(second.mint(uuid.uuid4()))).role == "admin"


async def test_scope_dependency(cx_tokens: TokenMinter):
    app = FastAPI()
    install_problem_handlers(app)
    app.state.jwt_verifier = cx_tokens.verifier()

    @app.get("/tickets")
    async def tickets(p: Principal = Depends(require_scopes("tickets:read"))) -> dict:
        return {"tenant": str(p.tenant_id)}

    tenant = uuid.uuid4()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        ok = await c.get(
            "/tickets", headers={"Authorization": f"Bearer {cx_tokens.mint(tenant, scopes=('tickets:*',))}"}
        )
        assert ok.json() == {"tenant": str(tenant)}
        denied = await c.get(
            "/tickets", headers={"Authorization": f"Bearer {cx_tokens.mint(tenant, scopes=('x:read',))}"}
        )
        assert denied.status_code == 403
        assert denied.json()["missing_scopes"] == ["tickets:read"]
        assert (await c.get("/tickets")).status_code == 401
