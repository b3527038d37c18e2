"""Partner API keys: `cxk_<prefix>_<secret>`.

Only the prefix (public, unique, used to find the row) and SHA-256 of the whole key are stored; the key is shown once.

Why SHA-256 and not argon2/scrypt: the secret is 256 bits from `secrets`, not a human password, so there is nothing
to brute-force and a slow KDF adds no security. It would add 10-100 ms of CPU (and, for argon2, MBs of memory) to
every partner request, which both caps ingest throughput and hands attackers a cheap CPU-exhaustion lever. A fast
hash + constant-time compare is the standard for high-entropy API tokens (GitHub, Stripe do the same).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

KEY_PREFIX = "cxk"


@dataclass(frozen=True)
class NewKey:
    key: str  # show once
    prefix: str
    key_hash: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate() -> NewKey:
    prefix = secrets.token_hex(8)
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    return NewKey(key=key, prefix=prefix, key_hash=hash_key(key))


def parse_prefix(key: str) -> str | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 16 or not parts[2]:
        return None
    return parts[1]


def matches(key: str, key_hash: str) -> bool:
    return hmac.compare_digest(hash_key(key), key_hash)
