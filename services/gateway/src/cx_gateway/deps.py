"""Dependencies shared by the gateway's routers."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from cx_common.app import SessionDep
from cx_common.auth import Principal
from cx_gateway.identity.deps import gateway_principal
from cx_gateway.identity.keys import KeyRing
from cx_gateway.org.service import OrgScope, scope_of
from cx_gateway.settings import Settings


async def get_settings_dep(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


async def get_keyring(request: Request) -> KeyRing:
    return cast(KeyRing, request.app.state.runtime.extras["keyring"])


async def get_scope(session: SessionDep, principal: Annotated[Principal, Depends(gateway_principal)]) -> OrgScope:
    return await scope_of(session, principal)


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
KeyRingDep = Annotated[KeyRing, Depends(get_keyring)]
ScopeDep = Annotated[OrgScope, Depends(get_scope)]
