import uuid

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from cx_common.errors import Problem, not_found
from cx_survey.journeys.models import JourneyStage, Touchpoint
from cx_survey.journeys.schemas import StageCreate, TouchpointCreate
from cx_survey.orgs.service import path_of

DEFAULT_STAGES = [
    ("pre_sale", {"zh-Hans": "售前", "zh-Hant": "售前", "en": "Pre-sale"}),
    ("in_sale", {"zh-Hans": "售中", "zh-Hant": "售中", "en": "In-sale"}),
    ("post_sale", {"zh-Hans": "售后", "zh-Hant": "售後", "en": "Post-sale"}),
]


async def ensure_defaults(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    exists = await session.scalar(select(JourneyStage.id).where(JourneyStage.tenant_id == tenant_id).limit(1))
    if exists is not None:
        return
    for position, (key, name) in enumerate(DEFAULT_STAGES):
        stmt = insert(JourneyStage).values(tenant_id=tenant_id, key=key, name=name, position=position, id=uuid.uuid4())
        await session.execute(stmt.on_conflict_do_nothing())


async def list_stages(session: AsyncSession, tenant_id: uuid.UUID) -> list[JourneyStage]:
    await ensure_defaults(session, tenant_id)
    result = await session.execute(
        select(JourneyStage)
        .where(JourneyStage.tenant_id == tenant_id)
        .order_by(JourneyStage.position, JourneyStage.key)
    )
    return list(result.scalars())


async def create_stage(session: AsyncSession, tenant_id: uuid.UUID, data: StageCreate) -> JourneyStage:
    await ensure_defaults(session, tenant_id)
    if await session.scalar(
        select(JourneyStage.id).where(JourneyStage.tenant_id == tenant_id, JourneyStage.key == data.key)
    ):
        raise Problem(409, f"key: stage {data.key} already exists", field="key")
    stage = JourneyStage(
        tenant_id=tenant_id,
        key=data.key,
        name=data.name.model_dump(by_alias=True, exclude_none=True),
        position=data.position,
    )
    session.add(stage)
    await session.flush()
    return stage


async def create_touchpoint(session: AsyncSession, tenant_id: uuid.UUID, data: TouchpointCreate) -> Touchpoint:
    stages = {s.key for s in await list_stages(session, tenant_id)}
    if data.stage_key not in stages:
        raise Problem(
            422,
            f"stage_key: unknown stage {data.stage_key}",
            field="stage_key",
            errors=[{"field": "stage_key", "message": "unknown stage"}],
        )
    await path_of(session, tenant_id, data.org_unit_id, field="org_unit_id")
    touchpoint = Touchpoint(tenant_id=tenant_id, **data.model_dump())
    session.add(touchpoint)
    await session.flush()
    await session.refresh(touchpoint)
    return touchpoint


async def get_touchpoint(
    session: AsyncSession, tenant_id: uuid.UUID, touchpoint_id: uuid.UUID, *, field: str = "touchpoint_id"
) -> Touchpoint:
    tp = (
        await session.execute(
            select(Touchpoint).where(Touchpoint.tenant_id == tenant_id, Touchpoint.id == touchpoint_id)
        )
    ).scalar_one_or_none()
    if tp is None:
        if field:
            raise Problem(
                422,
                f"{field}: unknown touchpoint",
                field=field,
                errors=[{"field": field, "message": "unknown touchpoint"}],
            )
        raise not_found("touchpoint", touchpoint_id)
    return tp


async def list_touchpoints(session: AsyncSession, tenant_id: uuid.UUID, stage_key: str | None) -> list[Touchpoint]:
    query = select(Touchpoint).where(Touchpoint.tenant_id == tenant_id).order_by(Touchpoint.id)
    if stage_key:
        query = query.where(Touchpoint.stage_key == stage_key)
    return list((await session.execute(query)).scalars())
