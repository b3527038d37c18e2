"""Org tree projections: events fill a service's own table (whatever columns it has), paths and subtree scoping."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Boolean, String, select
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cx.events.v1 import events_pb2
from cx_common.auth import Principal
from cx_common.db import create_engine, session_factory
from cx_common.orgs import subtree_filter, tree_known, unit_path, upsert_org_unit, visible_unit_ids
from cx_local.provision import create_database, drop_database


class Base(DeclarativeBase):
    pass


class FullUnit(Base):  # the shape alerts keeps: nullable parent, manager, ARRAY ancestors
    __tablename__ = "full_units"
    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    parent_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    manager_user_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ancestor_ids: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class SlimUnit(Base):  # the shape ingest keeps: non-null parent, JSONB ancestors, no manager
    __tablename__ = "slim_units"
    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    parent_id: Mapped[str] = mapped_column(String(64), default="")
    ancestor_ids: Mapped[list[str]] = mapped_column(JSONB, default=list)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


TENANT, OTHER = uuid.UUID(int=7), uuid.UUID(int=8)
TREE = [("hq", [], None), ("east", ["hq"], "u-east"), ("s1", ["hq", "east"], None), ("s2", ["hq", "east"], None)]


def envelope(tenant: uuid.UUID, unit: str, ancestors: list[str], manager: str | None, *, deleted: bool = False):
    return events_pb2.Envelope(
        tenant_id=str(tenant),
        type="org.unit.deleted" if deleted else "org.unit.upserted",
        org_unit_changed=events_pb2.OrgUnitChanged(
            org_unit_id=unit,
            parent_id=ancestors[-1] if ancestors else "",
            name=unit.upper(),
            ancestor_ids=ancestors,
            manager_user_id=manager or "",
        ),
    )


@pytest.fixture
async def session(cx_pg) -> AsyncIterator[AsyncSession]:
    name = f"orgs_{secrets.token_hex(4)}"
    await create_database(cx_pg.admin_url, name)
    engine = create_engine(cx_pg.database_url(name), "public")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with session_factory(engine)() as s:
        yield s
    await engine.dispose()
    await drop_database(cx_pg.admin_url, name)


@pytest.mark.parametrize("model", [FullUnit, SlimUnit])
async def test_events_fill_the_projection_and_scope_subtrees(session: AsyncSession, model) -> None:
    assert not await tree_known(session, model, TENANT)
    for unit, ancestors, manager in TREE:
        await upsert_org_unit(session, model, envelope(TENANT, unit, ancestors, manager))
    await upsert_org_unit(session, model, envelope(OTHER, "s9", ["hq"], None))
    await upsert_org_unit(session, model, envelope(TENANT, "s2", ["hq", "east"], None))  # replayed: no duplicate
    await session.commit()

    assert await tree_known(session, model, TENANT)
    assert await unit_path(session, model, TENANT, "s1") == ["hq", "east", "s1"]
    assert await unit_path(session, model, TENANT, "nope") is None
    hq = await session.get(model, (TENANT, "hq"))
    assert hq.parent_id in (None, "")

    def principal(org: str | None) -> Principal:
        return Principal(user_id="u", tenant_id=TENANT, role="manager", org_unit_id=org)

    assert visible_unit_ids(model, principal(None)) is None
    east = set((await session.scalars(visible_unit_ids(model, principal("east")))).all())
    assert east == {"east", "s1", "s2"}  # not hq, not the other tenant's rows
    store = (await session.scalars(select(model.id).where(*subtree_filter(model.id, model, principal("s1"))))).all()
    assert store == ["s1"]

    await upsert_org_unit(session, model, envelope(TENANT, "s1", ["hq", "east"], None, deleted=True))
    await session.commit()
    assert await unit_path(session, model, TENANT, "s1") is None
    east = set((await session.scalars(visible_unit_ids(model, principal("east")))).all())
    assert east == {"east", "s2"}


async def test_manager_is_kept_where_the_table_has_the_column(session: AsyncSession) -> None:
    await upsert_org_unit(session, FullUnit, envelope(TENANT, "east", ["hq"], "u-east"))
    await session.commit()
    assert (await session.get(FullUnit, (TENANT, "east"))).manager_user_id == "u-east"
