"""`cx-gateway seed-demo`: an idempotent demo tenant — org tree HQ → regions → stores (+ a department) and one user
per role with known demo passwords."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cx_gateway.analytics.models import Kpi
from cx_gateway.identity import service as identity
from cx_gateway.identity.models import Tenant, User
from cx_gateway.identity.schemas import TenantCreate, UserCreate
from cx_gateway.org import service as org
from cx_gateway.org.models import OrgUnit
from cx_gateway.org.schemas import OrgUnitCreate, OrgUnitUpdate
from cx_gateway.org.service import OrgScope
from cx_gateway.settings import Settings

DEMO_SLUG = "demo"

# code, parent code, kind, name, attributes
DEMO_UNITS: list[tuple[str, str, str, str, dict[str, str]]] = [
    ("R-EAST", "HQ", "region", "华东区 East", {}),
    ("R-SOUTH", "HQ", "region", "华南区 South", {}),
    ("S-SH-01", "R-EAST", "store", "上海南京路店 Shanghai Nanjing Rd", {"size": "large", "city": "上海"}),
    ("S-HZ-01", "R-EAST", "store", "杭州西湖店 Hangzhou West Lake", {"size": "medium", "city": "杭州"}),
    ("S-GZ-01", "R-SOUTH", "store", "广州天河店 Guangzhou Tianhe", {"size": "large", "city": "广州"}),
    ("S-SZ-01", "R-SOUTH", "store", "深圳福田店 Shenzhen Futian", {"size": "small", "city": "深圳"}),
    ("D-CX", "HQ", "department", "客户体验部 CX Department", {}),
]

# email, display name, role, org code, locale
DEMO_USERS: list[tuple[str, str, str, str, str]] = [
    ("owner@demo.cx", "王总 (Owner)", "owner", "HQ", "zh-Hans"),
    ("admin@demo.cx", "Admin 管理员", "admin", "HQ", "en"),
    ("analyst@demo.cx", "李分析 (Analyst)", "analyst", "HQ", "zh-Hans"),
    ("east.manager@demo.cx", "陳經理 (East region manager)", "manager", "R-EAST", "zh-Hant"),
    ("store.manager@demo.cx", "张店长 (Store manager)", "manager", "S-SH-01", "zh-Hans"),
    ("agent@demo.cx", "Agent 客服", "agent", "S-SH-01", "en"),
    ("viewer@demo.cx", "Viewer 访客", "viewer", "S-GZ-01", "zh-Hans"),
]


# unit code -> the user who manages it (ticket owner / task assignee found through the org tree)
DEMO_MANAGERS: list[tuple[str, str]] = [
    ("HQ", "owner@demo.cx"),
    ("R-EAST", "east.manager@demo.cx"),
    ("S-SH-01", "store.manager@demo.cx"),
    ("D-CX", "admin@demo.cx"),
]

DEMO_KPI_FORMULA = "0.4*(nps + 100)/200 + 0.3*(csat - 1)/4 + 0.3*(1 - complaint_rate)"


def demo_password(role: str) -> str:
    return f"cx-demo-{role}"


@dataclass
class DemoResult:
    tenant_id: uuid.UUID
    created: bool
    units: dict[str, uuid.UUID] = field(default_factory=dict)
    users: dict[str, uuid.UUID] = field(default_factory=dict)


async def seed_demo(session: AsyncSession, settings: Settings) -> DemoResult:
    """Create what is missing of the demo tenant (safe to run any number of times)."""
    tenant = (await session.execute(select(Tenant).where(Tenant.slug == DEMO_SLUG))).scalar_one_or_none()
    created = tenant is None
    if tenant is None:
        owner_email, owner_name, _, _, _ = DEMO_USERS[0]
        tenant, _, _ = await identity.create_tenant(
            session,
            TenantCreate(
                slug=DEMO_SLUG,
                name="演示零售集团 Demo Retail",
                root_org_name="总部 HQ",
                owner_email=owner_email,
                owner_password=demo_password("owner"),
                owner_name=owner_name,
            ),
            settings,
        )
    units = {
        u.code: u for u in (await session.execute(select(OrgUnit).where(OrgUnit.tenant_id == tenant.id))).scalars()
    }
    for code, parent_code, kind, name, attributes in DEMO_UNITS:
        if code not in units:
            units[code] = await org.create(
                session,
                tenant.id,
                OrgUnitCreate(name=name, code=code, kind=kind, parent_id=units[parent_code].id, attributes=attributes),
                settings.events_subject_prefix,
                None,
            )
    users = {u.email: u for u in (await session.execute(select(User).where(User.tenant_id == tenant.id))).scalars()}
    for email, name, role, code, locale in DEMO_USERS:
        if email not in users:
            users[email] = await identity.create_user(
                session,
                tenant.id,
                UserCreate(
                    email=email,
                    display_name=name,
                    password=demo_password(role),
                    role=role,
                    org_unit_id=units[code].id,
                    locale=locale,
                ),
                settings,
                granter_role="owner",
            )
    scope = OrgScope(tenant.id, None, None)
    for code, email in DEMO_MANAGERS:
        unit = units[code]
        if unit.manager_user_id is None:  # the org tree names who owns tickets and approves tasks
            await org.update_unit(
                session,
                scope,
                unit,
                OrgUnitUpdate(manager_user_id=users[email].id),
                settings.events_subject_prefix,
            )
    if not await session.scalar(select(Kpi.id).where(Kpi.tenant_id == tenant.id, Kpi.code == "cx-index")):
        session.add(
            Kpi(
                tenant_id=tenant.id,
                code="cx-index",
                name="体验指数 CX index",
                formula=DEMO_KPI_FORMULA,
                description="0.4·NPS + 0.3·CSAT + 0.3·(1 − complaint rate), each scaled to 0..1",
                target=0.7,
            )
        )
        await session.flush()
    return DemoResult(
        tenant_id=tenant.id,
        created=created,
        units={c: u.id for c, u in units.items()},
        users={e: u.id for e, u in users.items()},
    )
