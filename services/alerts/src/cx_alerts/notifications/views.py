import datetime as dt
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, status
from pydantic import BaseModel, ConfigDict, Field, HttpUrl
from sqlalchemy import select

from cx_alerts.audit import service as audit
from cx_alerts.context import CtxDep
from cx_alerts.notifications import service
from cx_alerts.notifications.models import Delivery, Notification, NotificationChannel, NotificationPreference
from cx_common.app import SessionDep
from cx_common.auth import CurrentPrincipal, Principal, require_scopes
from cx_common.db import new_id
from cx_common.errors import not_found
from cx_common.pagination import Page, clamp_limit

router = APIRouter(prefix="/v1/notifications", tags=["notifications"])


class NotificationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str
    title: str
    body: str
    ticket_id: uuid.UUID | None
    task_id: uuid.UUID | None
    alert_id: uuid.UUID | None
    created_at: dt.datetime
    read_at: dt.datetime | None


@router.get("", response_model=Page[NotificationRead], summary="The caller's notifications (oldest first)")
async def my_notifications(
    session: SessionDep,
    principal: CurrentPrincipal,
    unread: bool = False,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
    cursor: str | None = None,
) -> Page[NotificationRead]:
    rows, next_cursor = await service.list_for_user(
        session, principal.tenant_id, principal.user_id, limit=clamp_limit(limit), cursor=cursor, unread=unread
    )
    return Page[NotificationRead](items=[NotificationRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post("/{notification_id}/read", response_model=NotificationRead, summary="Mark one as read")
async def mark_read(
    notification_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal, ctx: CtxDep
) -> NotificationRead:
    note = (
        await session.execute(
            select(Notification).where(
                Notification.tenant_id == principal.tenant_id,
                Notification.user_id == principal.user_id,
                Notification.id == notification_id,
            )
        )
    ).scalar_one_or_none()
    if note is None:
        raise not_found("notification", notification_id)
    if note.read_at is None:
        note.read_at = ctx.now()
        await session.commit()
    return NotificationRead.model_validate(note)


class PreferenceWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(default=None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    email_enabled: bool = True
    muted_kinds: list[str] = Field(default_factory=list, description="kinds not sent by e-mail, e.g. ticket_comment")


class PreferenceRead(PreferenceWrite):
    model_config = ConfigDict(from_attributes=True)


@router.get("/preferences", response_model=PreferenceRead, summary="The caller's delivery preferences")
async def get_preferences(session: SessionDep, principal: CurrentPrincipal) -> PreferenceRead:
    pref = await _preference(session, principal)
    return PreferenceRead.model_validate(pref) if pref else PreferenceRead()


@router.put("/preferences", response_model=PreferenceRead, summary="Set the caller's delivery preferences")
async def put_preferences(body: PreferenceWrite, session: SessionDep, principal: CurrentPrincipal) -> PreferenceRead:
    pref = await _preference(session, principal)
    if pref is None:
        pref = NotificationPreference(id=new_id(), tenant_id=principal.tenant_id, user_id=principal.user_id)
        session.add(pref)
    pref.email = body.email
    pref.email_enabled = body.email_enabled
    pref.muted_kinds = body.muted_kinds
    await session.commit()
    return PreferenceRead.model_validate(pref)


async def _preference(session: SessionDep, principal: Principal) -> NotificationPreference | None:
    return (
        await session.execute(
            select(NotificationPreference).where(
                NotificationPreference.tenant_id == principal.tenant_id,
                NotificationPreference.user_id == principal.user_id,
            )
        )
    ).scalar_one_or_none()


channels_router = APIRouter(prefix="/v1", tags=["notifications"])
Admin = Annotated[Principal, Depends(require_scopes("notifications:write"))]
Auditor = Annotated[Principal, Depends(require_scopes("notifications:read"))]


class ChannelWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    url: HttpUrl
    format: Literal["generic", "wecom", "dingtalk", "slack"] = "generic"
    secret: str = Field(min_length=16, max_length=200, description="shared HMAC key (not returned on reads)")
    kinds: list[str] = Field(default_factory=list, description="notification kinds to forward; empty: all")
    enabled: bool = True


class ChannelRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    url: str
    format: str
    kinds: list[str]
    enabled: bool


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    notification_id: uuid.UUID | None
    channel: str
    target: str
    subject: str
    status: str
    attempts: int
    next_attempt_at: dt.datetime | None
    delivered_at: dt.datetime | None
    last_error: str


@channels_router.post(
    "/notification-channels",
    status_code=status.HTTP_201_CREATED,
    response_model=ChannelRead,
    summary="Add a signed outbound webhook (WeCom, DingTalk, Slack, generic)",
)
async def create_channel(body: ChannelWrite, session: SessionDep, principal: Admin) -> ChannelRead:
    channel = NotificationChannel(
        id=new_id(),
        tenant_id=principal.tenant_id,
        name=body.name,
        url=str(body.url),
        format=body.format,
        secret=body.secret,
        kinds=body.kinds,
        enabled=body.enabled,
    )
    session.add(channel)
    await session.flush()
    await audit.record(
        session,
        principal.tenant_id,
        audit.Actor.of(principal),
        entity_type="notification_channel",
        entity_id=channel.id,
        action="created",
        after={"name": channel.name, "url": channel.url, "kinds": body.kinds},
    )
    await session.commit()
    return ChannelRead.model_validate(channel)


@channels_router.get("/notification-channels", response_model=list[ChannelRead], summary="List webhooks")
async def list_channels(session: SessionDep, principal: Auditor) -> list[ChannelRead]:
    rows = await session.execute(
        select(NotificationChannel)
        .where(NotificationChannel.tenant_id == principal.tenant_id)
        .order_by(NotificationChannel.id)
    )
    return [ChannelRead.model_validate(r) for r in rows.scalars()]


@channels_router.get(
    "/notification-deliveries", response_model=list[DeliveryRead], summary="Outbound deliveries (newest first)"
)
async def list_deliveries(
    session: SessionDep,
    principal: Auditor,
    status_: Annotated[Literal["pending", "delivered", "failed"] | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[DeliveryRead]:
    query = select(Delivery).where(Delivery.tenant_id == principal.tenant_id)
    if status_:
        query = query.where(Delivery.status == status_)
    rows = await session.execute(query.order_by(Delivery.id.desc()).limit(limit))
    return [DeliveryRead.model_validate(r) for r in rows.scalars()]
