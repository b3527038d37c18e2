import hmac
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Response, status
from pydantic import BaseModel

from cx_common.app import SessionDep
from cx_common.auth import Principal
from cx_common.errors import Problem
from cx_common.pagination import Page, clamp_limit
from cx_gateway.deps import KeyRingDep, ScopeDep, SettingsDep
from cx_gateway.identity import keys, service
from cx_gateway.identity.deps import GatewayPrincipal, require, user_uuid
from cx_gateway.identity.models import User
from cx_gateway.identity.schemas import (
    ApiTokenCreate,
    ApiTokenCreated,
    ApiTokenRead,
    KeyRotated,
    LoginRequest,
    Me,
    MembershipCreate,
    MembershipRead,
    RefreshRequest,
    TenantCreate,
    TokenPair,
    UserCreate,
    UserRead,
    UserUpdate,
)

auth_router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
platform_router = APIRouter(prefix="/api/v1/tenants", tags=["tenants"])
users_router = APIRouter(prefix="/api/v1", tags=["users"])

UsersRead = Annotated[Principal, Depends(require("users:read"))]
UsersWrite = Annotated[Principal, Depends(require("users:write"))]
TokensRead = Annotated[Principal, Depends(require("tokens:read"))]
TokensWrite = Annotated[Principal, Depends(require("tokens:write"))]
KeysWrite = Annotated[Principal, Depends(require("keys:write"))]


@auth_router.post("/login", response_model=TokenPair, summary="Log in with e-mail + password")
async def login(body: LoginRequest, session: SessionDep, ring: KeyRingDep, settings: SettingsDep) -> TokenPair:
    identity = await service.authenticate(session, body.tenant, body.email, body.password, body.org_unit_id, settings)
    pair = await service.issue_tokens(session, identity, ring, settings)
    await session.commit()
    return pair


@auth_router.post("/refresh", response_model=TokenPair, summary="Rotate a refresh token")
async def refresh(body: RefreshRequest, session: SessionDep, ring: KeyRingDep, settings: SettingsDep) -> TokenPair:
    pair = await service.refresh(session, body.refresh_token, ring, settings)
    await session.commit()
    return pair


@auth_router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke a refresh token family")
async def logout(body: RefreshRequest, session: SessionDep) -> Response:
    await service.revoke_refresh(session, body.refresh_token)
    await session.commit()
    return Response(status_code=204)


@auth_router.get("/jwks", summary="Public signing keys (JWKS) every service verifies tokens with")
async def jwks(ring: KeyRingDep, response: Response) -> dict[str, Any]:
    response.headers["Cache-Control"] = "public, max-age=60"
    return await ring.jwks()


@auth_router.post("/keys:rotate", response_model=KeyRotated, summary="Rotate the signing key now")
async def rotate_keys(session: SessionDep, ring: KeyRingDep, settings: SettingsDep, _: KeysWrite) -> KeyRotated:
    row = await keys.rotate(session, settings)
    await session.commit()
    ring.invalidate()
    return KeyRotated(kid=row.kid)


@auth_router.get("/me", response_model=Me, summary="The caller")
async def me(principal: GatewayPrincipal, session: SessionDep) -> Me:
    result = Me(
        user_id=principal.user_id,
        tenant_id=principal.tenant_id,
        role=principal.role,
        org_unit_id=principal.org_unit_id,
        scopes=sorted(principal.scopes),
    )
    uid = user_uuid(principal)
    user = await session.get(User, uid) if uid is not None else None
    if uid is not None and user is not None and user.tenant_id == principal.tenant_id:
        result.display_name, result.email, result.locale = user.display_name, user.email, user.locale
        result.memberships = [MembershipRead.model_validate(m) for m in await service.memberships_of(session, uid)]
    return result


@users_router.post("/users", status_code=201, response_model=UserRead)
async def create_user(
    body: UserCreate, session: SessionDep, principal: UsersWrite, scope: ScopeDep, settings: SettingsDep
) -> UserRead:
    user = await service.create_user(
        session, principal.tenant_id, body, settings, granter_role=principal.role, scope=scope
    )
    result = await service.user_read(session, user)
    await session.commit()
    return result


@users_router.get("/users", response_model=Page[UserRead])
async def list_users(
    session: SessionDep,
    _: UsersRead,
    scope: ScopeDep,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
    cursor: str | None = None,
) -> Page[UserRead]:
    rows, next_cursor = await service.list_users(session, scope, limit=clamp_limit(limit), cursor=cursor)
    return Page[UserRead](items=[await service.user_read(session, r) for r in rows], next_cursor=next_cursor)


@users_router.get("/users/{user_id}", response_model=UserRead)
async def get_user(user_id: uuid.UUID, session: SessionDep, _: UsersRead, scope: ScopeDep) -> UserRead:
    return await service.user_read(session, await service.get_visible_user(session, scope, user_id))


@users_router.patch("/users/{user_id}", response_model=UserRead)
async def update_user(
    user_id: uuid.UUID, body: UserUpdate, session: SessionDep, _: UsersWrite, scope: ScopeDep, settings: SettingsDep
) -> UserRead:
    user = await service.get_visible_user(session, scope, user_id)
    await service.update_user(session, user, body, settings)
    result = await service.user_read(session, user)
    await session.commit()
    return result


@users_router.post("/users/{user_id}/memberships", status_code=201, response_model=UserRead)
async def add_membership(
    user_id: uuid.UUID,
    body: MembershipCreate,
    session: SessionDep,
    principal: UsersWrite,
    scope: ScopeDep,
    settings: SettingsDep,
) -> UserRead:
    user = await service.get_visible_user(session, scope, user_id)
    await service.add_membership(session, scope, user, body, settings, principal.role)
    result = await service.user_read(session, user)
    await session.commit()
    return result


@users_router.post("/api-tokens", status_code=201, response_model=ApiTokenCreated, tags=["api tokens"])
async def create_api_token(
    body: ApiTokenCreate, session: SessionDep, principal: TokensWrite, scope: ScopeDep
) -> ApiTokenCreated:
    if principal.claims.get("api_token_id"):
        raise Problem(403, "API tokens cannot create API tokens")
    row, token = await service.create_api_token(session, principal, scope, body)
    await session.commit()
    return ApiTokenCreated(**ApiTokenRead.model_validate(row).model_dump(), token=token)


@users_router.get("/api-tokens", response_model=Page[ApiTokenRead], tags=["api tokens"])
async def list_api_tokens(
    session: SessionDep,
    _: TokensRead,
    scope: ScopeDep,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
    cursor: str | None = None,
) -> Page[ApiTokenRead]:
    rows, next_cursor = await service.list_api_tokens(session, scope, limit=clamp_limit(limit), cursor=cursor)
    return Page[ApiTokenRead](items=[ApiTokenRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@users_router.delete("/api-tokens/{token_id}", status_code=204, tags=["api tokens"])
async def revoke_api_token(token_id: uuid.UUID, session: SessionDep, _: TokensWrite, scope: ScopeDep) -> Response:
    await service.revoke_api_token(session, scope, token_id)
    await session.commit()
    return Response(status_code=204)


class TenantCreated(BaseModel):
    tenant_id: uuid.UUID
    slug: str
    root_org_unit_id: uuid.UUID
    owner_user_id: uuid.UUID


@platform_router.post(
    "",
    status_code=201,
    response_model=TenantCreated,
    summary="Create a tenant with its root org unit and owner (platform operators: X-Cx-Platform-Secret header)",
)
async def create_tenant(
    body: TenantCreate,
    session: SessionDep,
    settings: SettingsDep,
    x_cx_platform_secret: Annotated[str | None, Header()] = None,
) -> TenantCreated:
    expected = settings.internal_secret.get_secret_value()
    if not x_cx_platform_secret or not hmac.compare_digest(x_cx_platform_secret, expected):
        raise Problem(401, "platform secret required", headers={"WWW-Authenticate": "X-Cx-Platform-Secret"})
    tenant, root, owner = await service.create_tenant(session, body, settings)
    await session.commit()
    return TenantCreated(tenant_id=tenant.id, slug=tenant.slug, root_org_unit_id=root.id, owner_user_id=owner.id)
