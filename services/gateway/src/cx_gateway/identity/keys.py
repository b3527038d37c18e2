"""Signing keys: RS256 key pairs kept in the gateway schema (private half AES-GCM encrypted with a key derived from
settings), rotated by age or on demand; the JWKS publishes the active key and recently retired ones."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cx_common.auth import JWTVerifier
from cx_common.db import utcnow
from cx_gateway.identity.models import SigningKey
from cx_gateway.settings import Settings

_LOCK_ID = 0x63785F6B657973  # pg advisory lock: one rotation at a time across gateway replicas


def _aead(secret: str) -> AESGCM:
    return AESGCM(hashlib.sha256(b"cx-gateway-signing-keys\x00" + secret.encode()).digest())


def encrypt_private_key(pem: bytes, secret: str) -> bytes:
    nonce = os.urandom(12)
    return nonce + _aead(secret).encrypt(nonce, pem, b"cx-signing-key")


def decrypt_private_key(blob: bytes, secret: str) -> bytes:
    return _aead(secret).decrypt(blob[:12], blob[12:], b"cx-signing-key")


@dataclass(frozen=True)
class ActiveKey:
    kid: str
    private_key: rsa.RSAPrivateKey


def _new_key_row(secret: str) -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = f"{dt.datetime.now(dt.UTC):%Y%m%d}-{secrets.token_hex(6)}"
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    public.update({"kid": kid, "use": "sig", "alg": "RS256"})
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return SigningKey(
        kid=kid,
        algorithm="RS256",
        public_jwk=json.dumps(public),
        private_key_enc=encrypt_private_key(pem, secret),
        created_at=utcnow(),
    )


async def rotate(session: AsyncSession, settings: Settings) -> SigningKey:
    """Create a new active key; the previous active keys are retired (still published for a grace period)."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
    now = utcnow()
    for old in (await session.execute(select(SigningKey).where(SigningKey.retired_at.is_(None)))).scalars():
        old.retired_at = now
    row = _new_key_row(settings.key_encryption_secret.get_secret_value())
    session.add(row)
    await session.flush()
    return row


async def ensure_active_key(session: AsyncSession, settings: Settings) -> SigningKey:
    """The active key, rotating first when there is none or it is older than the rotation period."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
    current = (
        await session.execute(
            select(SigningKey).where(SigningKey.retired_at.is_(None)).order_by(SigningKey.created_at.desc()).limit(1)
        )
    ).scalar_one_or_none()
    if current is not None and utcnow() - current.created_at < dt.timedelta(days=settings.key_rotation_days):
        return current
    return await rotate(session, settings)


async def published_keys(session: AsyncSession, settings: Settings) -> list[dict[str, Any]]:
    cutoff = utcnow() - dt.timedelta(seconds=settings.key_retire_after_s)
    rows = (
        await session.execute(
            select(SigningKey)
            .where(or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > cutoff))
            .order_by(SigningKey.created_at.desc())
        )
    ).scalars()
    return [json.loads(r.public_jwk) for r in rows]


class KeyRing:
    """Per-process cache of the active signing key; reloaded from the database when it ages or rotates."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings, ttl_s: float = 60.0) -> None:
        self.sessions = sessions
        self.settings = settings
        self.ttl_s = ttl_s
        self._active: ActiveKey | None = None
        self._loaded_at = 0.0

    def invalidate(self) -> None:
        self._active = None

    async def active(self) -> ActiveKey:
        if self._active is not None and time.monotonic() - self._loaded_at < self.ttl_s:
            return self._active
        async with self.sessions() as session, session.begin():
            row = await ensure_active_key(session, self.settings)
            pem = decrypt_private_key(row.private_key_enc, self.settings.key_encryption_secret.get_secret_value())
        private = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(private, rsa.RSAPrivateKey)
        self._active = ActiveKey(kid=row.kid, private_key=private)
        self._loaded_at = time.monotonic()
        return self._active

    async def sign(self, claims: dict[str, Any]) -> str:
        key = await self.active()
        return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})

    async def jwks(self) -> dict[str, Any]:
        async with self.sessions() as session:
            return {"keys": await published_keys(session, self.settings)}


class LocalJWTVerifier(JWTVerifier):
    """The gateway verifies its own tokens against the keys in its schema (no HTTP round trip to itself)."""

    def __init__(self, ring: KeyRing, *, issuer: str, audience: str) -> None:
        super().__init__(issuer=issuer, audience=audience, jwks_url="local:", refresh_interval=60.0)
        self.ring = ring

    async def _refresh(self) -> None:
        self._load(await self.ring.jwks())
