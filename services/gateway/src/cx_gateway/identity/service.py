"""Identity logic: tenants, users + memberships, login with lockout, rotating refresh tokens, API tokens."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cx.events.v1 import events_pb2
from cx_common.auth import Principal
from cx_common.db import utcnow
from cx_common.errors import Problem, conflict, not_found
from cx_common.events import add_event
from cx_common.logging import get_logger
from cx_common.pagination import cursor_uuid, encode_cursor
from cx_gateway.identity import secrets as sec
from cx_gateway.identity.keys import KeyRing
from cx_gateway.identity.models import ApiToken, Membership, RefreshToken, Tenant, User
from cx_gateway.identity.roles import can_grant, scope_allowed, scopes_for
from cx_gateway.identity.schemas import (
    ApiTokenCreate,
    MembershipCreate,
    MembershipRead,
    TenantCreate,
    TokenPair,
    UserCreate,
    UserRead,
    UserUpdate,
)
from cx_gateway.org import service as org_service
from cx_gateway.org.models import OrgUnit
from cx_gateway.org.schemas import OrgUnitCreate
from cx_gateway.settings import Settings

log = get_logger(__name__)
SOURCE = "gateway"
INVALID_CREDENTIALS = "invalid credentials"


# -- tenants ---------------------------------------------------------------------------------------------------


async def create_tenant(session: AsyncSession, data: TenantCreate, settings: Settings) -> tuple[Tenant, OrgUnit, User]:
    if await session.scalar(select(Tenant.id).where(Tenant.slug == data.slug)):
        raise conflict(f"slug: tenant {data.slug!r} exists", field="slug")
    tenant = Tenant(slug=data.slug, name=data.name, default_language=data.default_language)
    session.add(tenant)
    await session.flush()
    root = await org_service.create(
        session,
        tenant.id,
        OrgUnitCreate(name=data.root_org_name, code="HQ", kind="hq"),
        settings.events_subject_prefix,
        None,
    )
    owner = await create_user(
        session,
        tenant.id,
        UserCreate(
            email=data.owner_email,
            display_name=data.owner_name,
            password=data.owner_password,
            role="owner",
            org_unit_id=root.id,
            locale=data.default_language,
        ),
        settings,
        granter_role="owner",
    )
    return tenant, root, owner


async def tenant_by_slug(session: AsyncSession, slug: str) -> Tenant | None:
    return (await session.execute(select(Tenant).where(Tenant.slug == slug))).scalar_one_or_none()


# -- users -----------------------------------------------------------------------------------------------------


async def memberships_of(session: AsyncSession, user_id: uuid.UUID) -> list[Membership]:
    rows = await session.execute(
        select(Membership).where(Membership.user_id == user_id).order_by(Membership.is_primary.desc(), Membership.id)
    )
    return list(rows.scalars())


async def publish_user(session: AsyncSession, user: User, settings: Settings) -> None:
    members = await memberships_of(session, user.id)
    primary = members[0] if members else None
    await add_event(
        session,
        tenant_id=user.tenant_id,
        event_type="org.user.upserted",
        payload=events_pb2.UserChanged(
            user_id=str(user.id),
            org_unit_id=str(primary.org_unit_id) if primary else "",
            role=primary.role if primary else "",
            display_name=user.display_name,
            email=user.email,
            active=user.active,
            locale=user.locale,
        ),
        source=SOURCE,
        subject_prefix=settings.events_subject_prefix,
    )


async def create_user(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    data: UserCreate,
    settings: Settings,
    *,
    granter_role: str,
    scope: org_service.OrgScope | None = None,
) -> User:
    if not can_grant(granter_role, data.role):
        raise Problem(403, f"role: a {granter_role} cannot grant {data.role}", field="role")
    unit = await (
        org_service.get_visible(session, scope, data.org_unit_id)
        if scope
        else org_service.get(session, tenant_id, data.org_unit_id)
    )
    if unit is None:
        raise not_found("org unit", data.org_unit_id)
    if await session.scalar(select(User.id).where(User.tenant_id == tenant_id, User.email == data.email)):
        raise conflict("email: a user with this e-mail exists", field="email")
    user = User(
        tenant_id=tenant_id,
        email=data.email,
        display_name=data.display_name,
        password_hash=sec.hash_password(data.password),
        locale=data.locale,
    )
    session.add(user)
    await session.flush()
    session.add(Membership(tenant_id=tenant_id, user_id=user.id, org_unit_id=unit.id, role=data.role, is_primary=True))
    await session.flush()
    await session.refresh(user)
    await publish_user(session, user, settings)
    return user


async def user_read(session: AsyncSession, user: User) -> UserRead:
    members = await memberships_of(session, user.id)
    return UserRead(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        locale=user.locale,
        active=user.active,
        memberships=[MembershipRead.model_validate(m) for m in members],
        created_at=user.created_at,
    )


def _visible_users(scope: org_service.OrgScope) -> Select[User]:
    in_scope = select(Membership.user_id).where(Membership.org_unit_id.in_(scope.unit_ids_query()))
    return select(User).where(User.tenant_id == scope.tenant_id, User.id.in_(in_scope))


async def get_visible_user(session: AsyncSession, scope: org_service.OrgScope, user_id: uuid.UUID) -> User:
    user: User | None = (await session.execute(_visible_users(scope).where(User.id == user_id))).scalar_one_or_none()
    if user is None:
        raise not_found("user", user_id)
    return user


async def list_users(
    session: AsyncSession, scope: org_service.OrgScope, *, limit: int, cursor: str | None
) -> tuple[list[User], str | None]:
    query = _visible_users(scope).order_by(User.id).limit(limit + 1)
    if (after := cursor_uuid(cursor)) is not None:
        query = query.where(User.id > after)
    rows = list((await session.execute(query)).scalars())
    next_cursor = encode_cursor({"id": str(rows[limit - 1].id)}) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def update_user(session: AsyncSession, user: User, data: UserUpdate, settings: Settings) -> User:
    if data.display_name is not None:
        user.display_name = data.display_name
    if data.locale is not None:
        user.locale = data.locale
    if data.password is not None:
        user.password_hash = sec.hash_password(data.password)
        await revoke_all_refresh(session, user.id)
    if data.active is not None:
        user.active = data.active
        if not data.active:
            await revoke_all_refresh(session, user.id)
    await session.flush()
    await session.refresh(user)
    await publish_user(session, user, settings)
    return user


async def add_membership(
    session: AsyncSession,
    scope: org_service.OrgScope,
    user: User,
    data: MembershipCreate,
    settings: Settings,
    granter_role: str,
) -> None:
    if not can_grant(granter_role, data.role):
        raise Problem(403, f"role: a {granter_role} cannot grant {data.role}", field="role")
    unit = await org_service.get_visible(session, scope, data.org_unit_id)
    existing = (
        await session.execute(
            select(Membership).where(Membership.user_id == user.id, Membership.org_unit_id == unit.id)
        )
    ).scalar_one_or_none()
    if data.is_primary:
        await session.execute(update(Membership).where(Membership.user_id == user.id).values(is_primary=False))
    if existing is not None:
        existing.role = data.role
        existing.is_primary = data.is_primary or existing.is_primary
    else:
        session.add(
            Membership(
                tenant_id=user.tenant_id,
                user_id=user.id,
                org_unit_id=unit.id,
                role=data.role,
                is_primary=data.is_primary,
            )
        )
    await session.flush()
    await publish_user(session, user, settings)


# -- tokens ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    user: User
    membership: Membership


async def access_claims(identity: Identity, settings: Settings) -> dict[str, object]:
    now = int(time.time())
    return {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(identity.user.id),
        "tid": str(identity.user.tenant_id),
        "role": identity.membership.role,
        "org": str(identity.membership.org_unit_id),
        "scope": " ".join(scopes_for(identity.membership.role)),
        "name": identity.user.display_name,
        "locale": identity.user.locale,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + settings.access_token_ttl_s,
    }


async def issue_tokens(
    session: AsyncSession, identity: Identity, ring: KeyRing, settings: Settings, family_id: uuid.UUID | None = None
) -> TokenPair:
    access = await ring.sign(await access_claims(identity, settings))
    refresh = sec.new_refresh_token()
    now = utcnow()
    session.add(
        RefreshToken(
            tenant_id=identity.user.tenant_id,
            token_hash=sec.token_hash(refresh),
            family_id=family_id or uuid.uuid4(),
            user_id=identity.user.id,
            membership_id=identity.membership.id,
            issued_at=now,
            expires_at=now + dt.timedelta(seconds=settings.refresh_token_ttl_s),
        )
    )
    await session.flush()
    return TokenPair(
        access_token=access,
        expires_in=settings.access_token_ttl_s,
        refresh_token=refresh,
        refresh_expires_in=settings.refresh_token_ttl_s,
    )


async def authenticate(
    session: AsyncSession,
    tenant_slug: str,
    email: str,
    password: str,
    org_unit_id: uuid.UUID | None,
    settings: Settings,
) -> Identity:
    """The identity behind the credentials, or 401 with no hint which part was wrong. Repeated failures lock."""
    tenant = await tenant_by_slug(session, tenant_slug)
    user = None
    if tenant is not None and tenant.active:
        user = (
            await session.execute(
                select(User).where(User.tenant_id == tenant.id, User.email == email.strip().lower()).with_for_update()
            )
        ).scalar_one_or_none()
    now = utcnow()
    ok = sec.verify_password(user.password_hash if user else None, password)
    if user is None or not user.active:
        raise Problem(401, INVALID_CREDENTIALS)
    if user.locked_until is not None and user.locked_until > now:
        log.info("login_locked", user_id=str(user.id))
        raise Problem(401, INVALID_CREDENTIALS)
    if not ok:
        user.failed_logins += 1
        if user.failed_logins >= settings.login_max_failures:
            user.locked_until = now + dt.timedelta(seconds=settings.login_lockout_s)
            user.failed_logins = 0
            log.warning("login_lockout", user_id=str(user.id))
        await session.commit()
        raise Problem(401, INVALID_CREDENTIALS)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    assert user.password_hash is not None
    if sec.needs_rehash(user.password_hash):
        user.password_hash = sec.hash_password(password)
    members = await memberships_of(session, user.id)
    if org_unit_id is not None:
        members = [m for m in members if m.org_unit_id == org_unit_id]
    if not members:
        raise Problem(401, INVALID_CREDENTIALS)
    return Identity(user=user, membership=members[0])


async def identity_for_sso(session: AsyncSession, tenant_slug: str, email: str) -> Identity:
    """The existing, active user with this (verified) e-mail in the tenant; SSO never creates accounts."""
    tenant = await tenant_by_slug(session, tenant_slug)
    user = None
    if tenant is not None and tenant.active:
        user = (
            await session.execute(select(User).where(User.tenant_id == tenant.id, User.email == email.strip().lower()))
        ).scalar_one_or_none()
    if user is None or not user.active:
        raise Problem(401, "single sign-on failed")
    members = await memberships_of(session, user.id)
    if not members:
        raise Problem(401, "single sign-on failed")
    user.last_login_at = utcnow()
    return Identity(user=user, membership=members[0])


async def refresh(session: AsyncSession, token: str, ring: KeyRing, settings: Settings) -> TokenPair:
    """Rotate a refresh token. Presenting one that was already used revokes its whole family (theft detection)."""
    row = (
        await session.execute(
            select(RefreshToken).where(RefreshToken.token_hash == sec.token_hash(token)).with_for_update()
        )
    ).scalar_one_or_none()
    now = utcnow()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        raise Problem(401, "invalid refresh token")
    if row.used_at is not None:
        await session.execute(
            update(RefreshToken).where(RefreshToken.family_id == row.family_id).values(revoked_at=now)
        )
        await session.commit()
        log.warning("refresh_token_reuse", user_id=str(row.user_id))
        raise Problem(401, "invalid refresh token")
    row.used_at = now
    user = await session.get(User, row.user_id)
    membership = await session.get(Membership, row.membership_id)
    if user is None or not user.active or membership is None:
        raise Problem(401, "invalid refresh token")
    return await issue_tokens(session, Identity(user, membership), ring, settings, family_id=row.family_id)


async def revoke_refresh(session: AsyncSession, token: str) -> None:
    row = (
        await session.execute(select(RefreshToken).where(RefreshToken.token_hash == sec.token_hash(token)))
    ).scalar_one_or_none()
    if row is not None:
        await session.execute(
            update(RefreshToken).where(RefreshToken.family_id == row.family_id).values(revoked_at=utcnow())
        )


async def revoke_all_refresh(session: AsyncSession, user_id: uuid.UUID) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def create_api_token(
    session: AsyncSession, principal: Principal, scope: org_service.OrgScope, data: ApiTokenCreate
) -> tuple[ApiToken, str]:
    if not can_grant(principal.role, data.role):
        raise Problem(403, f"role: a {principal.role} cannot grant {data.role}", field="role")
    unit_id = data.org_unit_id or scope.root_id
    if unit_id is None:
        raise Problem(422, "org_unit_id: required", field="org_unit_id")
    unit = await org_service.get_visible(session, scope, unit_id)
    role_scopes = scopes_for(data.role)
    scopes = data.scopes if data.scopes is not None else list(role_scopes)
    for s in scopes:
        if not scope_allowed(frozenset(role_scopes), s) or not principal.has(s):
            raise Problem(422, f"scopes: {s!r} is not granted to role {data.role} or to you", field="scopes")
    token, prefix = sec.new_api_token()
    row = ApiToken(
        tenant_id=principal.tenant_id,
        name=data.name,
        prefix=prefix,
        token_hash=sec.token_hash(token),
        org_unit_id=unit.id,
        role=data.role,
        scopes=" ".join(scopes),
        created_by=_uuid_or_none(principal.user_id),
        expires_at=utcnow() + dt.timedelta(days=data.expires_in_days) if data.expires_in_days else None,
    )
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return row, token


async def list_api_tokens(
    session: AsyncSession, scope: org_service.OrgScope, *, limit: int, cursor: str | None
) -> tuple[list[ApiToken], str | None]:
    query = (
        select(ApiToken)
        .where(ApiToken.tenant_id == scope.tenant_id, ApiToken.org_unit_id.in_(scope.unit_ids_query()))
        .order_by(ApiToken.id)
        .limit(limit + 1)
    )
    if (after := cursor_uuid(cursor)) is not None:
        query = query.where(ApiToken.id > after)
    rows = list((await session.execute(query)).scalars())
    next_cursor = encode_cursor({"id": str(rows[limit - 1].id)}) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def revoke_api_token(session: AsyncSession, scope: org_service.OrgScope, token_id: uuid.UUID) -> None:
    row = (
        await session.execute(
            select(ApiToken).where(
                ApiToken.tenant_id == scope.tenant_id,
                ApiToken.id == token_id,
                ApiToken.org_unit_id.in_(scope.unit_ids_query()),
            )
        )
    ).scalar_one_or_none()
    if row is None:
        raise not_found("api token", token_id)
    if row.revoked_at is None:
        row.revoked_at = utcnow()


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def mint_for_principal(principal: Principal, ring: KeyRing, settings: Settings, ttl_s: int = 120) -> str:
    """A short-lived JWT carrying an API-token principal, so upstream services can verify it like any other."""
    now = int(time.time())
    return await ring.sign(
        {
            "iss": settings.jwt_issuer,
            "aud": settings.jwt_audience,
            "sub": principal.user_id,
            "tid": str(principal.tenant_id),
            "role": principal.role,
            "org": principal.org_unit_id,
            "scope": " ".join(sorted(principal.scopes)),
            "iat": now,
            "exp": now + ttl_s,
        }
    )
