"""Roles and the scopes they carry. Scopes look like `<domain>:read` / `<domain>:write`; `<domain>:*` and `*` match."""

from __future__ import annotations

from typing import Literal

Role = Literal["owner", "admin", "analyst", "manager", "agent", "viewer"]
ROLES: tuple[str, ...] = ("owner", "admin", "analyst", "manager", "agent", "viewer")

# Data domains of the platform (the owning service in brackets).
DATA_DOMAINS = (
    "surveys",  # survey
    "responses",  # survey
    "feedback",  # ingest
    "codebooks",  # ingest
    "odata",  # ingest
    "partners",  # ingest
    "privacy",  # ingest
    "rules",  # alerts
    "alerts",  # alerts
    "tickets",  # alerts
    "tasks",  # alerts
    "sla",  # alerts
    "audit",  # alerts
    "analytics",  # gateway
    "kpis",  # gateway
    "nlp",  # gateway -> nlp
)
ADMIN_DOMAINS = ("org", "users", "tokens", "keys")


def _read(*domains: str) -> list[str]:
    return [f"{d}:read" for d in domains]


def _write(*domains: str) -> list[str]:
    return [f"{d}:write" for d in domains]


ROLE_SCOPES: dict[str, tuple[str, ...]] = {
    "owner": ("*",),
    "admin": tuple(f"{d}:*" for d in (*DATA_DOMAINS, *ADMIN_DOMAINS)),
    "analyst": (
        *_read(*DATA_DOMAINS, "org", "users"),
        *_write("surveys", "codebooks", "analytics", "kpis", "nlp", "rules"),
    ),
    "manager": (
        *_read(*(d for d in DATA_DOMAINS if d not in ("privacy", "partners")), "org", "users"),
        *_write("tickets", "tasks", "alerts", "surveys", "responses"),
    ),
    "agent": tuple(
        _read("surveys", "responses", "feedback", "tickets", "tasks", "alerts", "analytics", "org", "nlp")
        + _write("tickets", "tasks")
    ),
    "viewer": tuple(_read("surveys", "responses", "feedback", "tickets", "tasks", "analytics", "kpis", "org")),
}


def scopes_for(role: str) -> tuple[str, ...]:
    return ROLE_SCOPES.get(role, ())


def scope_allowed(held: frozenset[str] | set[str] | tuple[str, ...], scope: str) -> bool:
    if scope in held or "*" in held:
        return True
    return f"{scope.split(':', 1)[0]}:*" in held


RANK = {role: i for i, role in enumerate(reversed(ROLES))}  # viewer 0 ... owner 5


def can_grant(granter_role: str, role: str) -> bool:
    """A user may hand out roles up to their own (an admin cannot make owners)."""
    return RANK.get(granter_role, -1) >= RANK.get(role, 99) and (role != "owner" or granter_role == "owner")
