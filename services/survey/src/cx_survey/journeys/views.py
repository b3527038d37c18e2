import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, status

from cx_common.app import SessionDep
from cx_common.auth import Principal, require_scopes
from cx_survey.journeys import service
from cx_survey.journeys.schemas import StageCreate, StageRead, TouchpointCreate, TouchpointRead

router = APIRouter(prefix="/v1", tags=["journeys"])

Reader = Annotated[Principal, Depends(require_scopes("surveys:read"))]
Writer = Annotated[Principal, Depends(require_scopes("surveys:write"))]


@router.get("/journey-stages", response_model=list[StageRead], summary="Stages (defaults: pre/in/post-sale)")
async def list_stages(session: SessionDep, principal: Reader) -> list[StageRead]:
    stages = await service.list_stages(session, principal.tenant_id)
    await session.commit()
    return [StageRead.model_validate(s) for s in stages]


@router.post("/journey-stages", status_code=status.HTTP_201_CREATED, response_model=StageRead)
async def create_stage(body: StageCreate, session: SessionDep, principal: Writer) -> StageRead:
    stage = await service.create_stage(session, principal.tenant_id, body)
    await session.commit()
    return StageRead.model_validate(stage)


@router.get("/touchpoints", response_model=list[TouchpointRead])
async def list_touchpoints(
    session: SessionDep, principal: Reader, stage_key: str | None = None
) -> list[TouchpointRead]:
    return [
        TouchpointRead.model_validate(t)
        for t in await service.list_touchpoints(session, principal.tenant_id, stage_key)
    ]


@router.post("/touchpoints", status_code=status.HTTP_201_CREATED, response_model=TouchpointRead)
async def create_touchpoint(body: TouchpointCreate, session: SessionDep, principal: Writer) -> TouchpointRead:
    touchpoint = await service.create_touchpoint(session, principal.tenant_id, body)
    await session.commit()
    return TouchpointRead.model_validate(touchpoint)


@router.get("/touchpoints/{touchpoint_id}", response_model=TouchpointRead)
async def get_touchpoint(touchpoint_id: uuid.UUID, session: SessionDep, principal: Reader) -> TouchpointRead:
    return TouchpointRead.model_validate(
        await service.get_touchpoint(session, principal.tenant_id, touchpoint_id, field="")
    )
