"""Passwords (argon2id) and opaque tokens (random, stored as SHA-256)."""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()  # argon2id, library defaults (RFC 9106 low-memory profile) unless configured
_dummy_hash: str | None = None


def configure_hasher(*, time_cost: int, memory_cost_kib: int, parallelism: int) -> None:
    """Set the argon2id cost (from settings); existing hashes keep verifying and are upgraded at the next login."""
    global _hasher, _dummy_hash
    _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost_kib, parallelism=parallelism)
    _dummy_hash = None


def _dummy() -> str:
    # A real hash to verify against when the user does not exist, so timing does not tell which part was wrong.
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash("cx-dummy-password-for-timing")
    return _dummy_hash


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _dummy(), password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_refresh_token() -> str:
    return "cxrt_" + secrets.token_urlsafe(32)


def new_api_token() -> tuple[str, str]:
    """(token, prefix): the prefix is shown in listings so a token can be recognised without storing it."""
    prefix = secrets.token_hex(4)
    return f"cxat_{prefix}_{secrets.token_urlsafe(32)}", prefix
