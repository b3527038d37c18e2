"""Codebook drafts, versions and activation.

Every read-modify-write of a codebook runs on its row locked (`SELECT ... FOR UPDATE`, `get(..., for_update=True)`)
in the request's transaction, so concurrent draft edits, publishes and promotions apply one after another. What
changes which codebook of a tenant is active (activation, creating an active codebook, publishing, which starts a
re-coding backfill when the codebook is active) first takes the tenant's transaction-level advisory lock
(`lock_tenant`), then the row: concurrent activations serialize instead of hitting the one-active-per-tenant index.
"""

import hashlib
import json
import secrets
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from cx_common.db import new_id
from cx_ingest.codebooks.models import Codebook, CodebookHistory, CodebookVersion
from cx_ingest.codebooks.schemas import CodebookCreate, NodeIn, NodePatch
from cx_ingest.codebooks.templates import template_nodes

MAX_LEVEL = 3
NODE_ID_BYTES = 6  # generated node ids: 12 random hex characters


class TreeError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class StateConflictError(Exception):
    """The codebook's state does not allow the change (answered with 409)."""


def new_node_id() -> str:
    """A random node id (12 hex characters). Not derived from a uuid7: its first 48 bits are the millisecond
    timestamp, so two ids made in the same millisecond would collide."""
    return secrets.token_hex(NODE_ID_BYTES)


def build_tree(nodes: Sequence[NodeIn], primary_language: str) -> list[dict[str, Any]]:
    """Validate a node list as a tree of at most 3 levels; returns nodes with ids and levels, parents first."""
    out: dict[str, dict[str, Any]] = {}
    pending: list[tuple[int, str, NodeIn]] = []
    by_id: dict[str, tuple[int, NodeIn]] = {}
    for i, node in enumerate(nodes):
        node_id = node.id or new_node_id()
        if node_id in by_id:
            raise TreeError(f"nodes.{i}.id", f"duplicate node id {node_id!r}")
        if not node.names.get(primary_language, "").strip():  # type: ignore[call-overload]
            raise TreeError(f"nodes.{i}.names", f"a name in the primary language {primary_language} is required")
        pending.append((i, node_id, node))
        by_id[node_id] = (i, node)

    levels: dict[str, int] = {}

    def level(node_id: str) -> int:
        """Iterative (a parent chain may be thousands of nodes long): walk up to a root or a node whose level is
        known, then assign the levels down the path."""
        path: list[str] = []
        on_path: set[str] = set()
        current = node_id
        while current not in levels:
            i, node = by_id[current]
            path.append(current)
            on_path.add(current)
            parent = node.parent_id
            if parent in (None, ""):
                break
            if parent not in by_id:
                raise TreeError(f"nodes.{i}.parent_id", f"unknown parent {parent!r}")
            if parent in on_path:
                raise TreeError(f"nodes.{i}.parent_id", "cycle")
            current = str(parent)
        base = levels.get(current, 0) if current not in on_path else 0
        for depth, ancestor in enumerate(reversed(path), start=1):
            levels[ancestor] = base + depth
        return levels[node_id]

    for i, node_id, node in pending:
        lvl = level(node_id)
        if lvl > MAX_LEVEL:
            raise TreeError(f"nodes.{i}.parent_id", f"codebooks have at most {MAX_LEVEL} levels")
        out[node_id] = {
            "id": node_id,
            "parent_id": node.parent_id or None,
            "level": lvl,
            "names": dict(node.names),
            "keywords": [k.strip() for k in node.keywords if k.strip()],
            "examples": [e.strip() for e in node.examples if e.strip()],
        }
    siblings: set[tuple[str | None, str]] = set()
    for i, _, _ in pending:
        node_data = out[pending[i][1]]
        key = (node_data["parent_id"], node_data["names"][primary_language].strip().lower())
        if key in siblings:
            raise TreeError(f"nodes.{i}.names", "two sibling nodes have the same name")
        siblings.add(key)
    order = {node_id: position for position, node_id in enumerate(out)}
    return sorted(out.values(), key=lambda n: (n["level"], order[n["id"]]))


def fingerprint(nodes: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(nodes, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _history(cb: Codebook, action: str, actor: str, before: Any, after: Any) -> CodebookHistory:
    return CodebookHistory(
        tenant_id=cb.tenant_id, codebook_id=cb.id, action=action, actor=actor, before=before, after=after
    )


def tenant_lock_key(tenant_id: uuid.UUID) -> int:
    """The advisory lock key (signed 64 bits) of a tenant's codebook activation."""
    digest = hashlib.sha256(b"cx-ingest:codebooks:active:" + tenant_id.bytes).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def lock_tenant(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    """Serialize changes of which codebook is active (held until the transaction ends). Take it before any
    codebook row lock."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": tenant_lock_key(tenant_id)})


async def _active_published(
    session: AsyncSession, tenant_id: uuid.UUID, other_than: uuid.UUID | None
) -> Codebook | None:
    """The tenant's active codebook, when it has a published version (what the analysis worker codes against)."""
    query = select(Codebook).where(
        Codebook.tenant_id == tenant_id, Codebook.active.is_(True), Codebook.latest_version > 0
    )
    if other_than is not None:
        query = query.where(Codebook.id != other_than)
    return (await session.execute(query)).scalars().first()


async def _check_can_replace_active(session: AsyncSession, tenant_id: uuid.UUID, candidate: Codebook | None) -> None:
    """An unpublished codebook may not displace an active codebook that has a published version: the analysis
    worker would code against nothing. (Call with the tenant lock held.)"""
    if candidate is not None and candidate.latest_version > 0:
        return
    current = await _active_published(session, tenant_id, candidate.id if candidate is not None else None)
    if current is not None:
        raise StateConflictError(
            f"codebook has no published version: publish a version first (activating it would deactivate "
            f"codebook {current.id}, version {current.latest_version}, and leave new feedback uncoded)"
        )


async def _deactivate_others(session: AsyncSession, tenant_id: uuid.UUID, keep: uuid.UUID | None) -> None:
    query = update(Codebook).where(Codebook.tenant_id == tenant_id, Codebook.active.is_(True))
    if keep is not None:
        query = query.where(Codebook.id != keep)
    await session.execute(query.values(active=False))
    await session.flush()


async def create(session: AsyncSession, tenant_id: uuid.UUID, data: CodebookCreate, actor: str) -> Codebook:
    """Raises TreeError, or StateConflictError when an active codebook with a published version would be replaced."""
    source = [NodeIn.model_validate(n) for n in template_nodes(data.template)] if data.template else data.nodes
    nodes = build_tree(source, data.primary_language)
    if data.active:
        await lock_tenant(session, tenant_id)
        await _check_can_replace_active(session, tenant_id, None)
        await _deactivate_others(session, tenant_id, None)
    cb = Codebook(
        id=new_id(),
        tenant_id=tenant_id,
        name=data.name,
        primary_language=data.primary_language,
        active=data.active,
        draft_nodes=nodes,
        latest_version=0,
    )
    session.add(cb)
    session.add(_history(cb, "created", actor, None, {"name": data.name, "nodes": nodes}))
    await session.flush()
    return cb


async def get(
    session: AsyncSession, tenant_id: uuid.UUID, codebook_id: uuid.UUID, *, for_update: bool = False
) -> Codebook | None:
    """With `for_update`, the row is locked until the transaction ends and the object is reloaded from it: use it
    for every read-modify-write of a codebook."""
    query = select(Codebook).where(Codebook.tenant_id == tenant_id, Codebook.id == codebook_id)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    return (await session.execute(query)).scalar_one_or_none()


async def list_all(session: AsyncSession, tenant_id: uuid.UUID) -> list[Codebook]:
    query = select(Codebook).where(Codebook.tenant_id == tenant_id).order_by(Codebook.id)
    return list((await session.execute(query)).scalars())


# Draft edits: `cb` must have been read with `get(..., for_update=True)` in the same transaction.


async def replace_draft(session: AsyncSession, cb: Codebook, nodes: Sequence[NodeIn], actor: str) -> Codebook:
    built = build_tree(nodes, cb.primary_language)
    session.add(_history(cb, "draft_replaced", actor, cb.draft_nodes, built))
    cb.draft_nodes = built
    await session.flush()
    return cb


async def add_node(session: AsyncSession, cb: Codebook, node: NodeIn, actor: str) -> Codebook:
    current = [NodeIn.model_validate({k: v for k, v in n.items() if k != "level"}) for n in cb.draft_nodes]
    built = build_tree([*current, node], cb.primary_language)
    added = next(n for n in built if n["id"] not in {c["id"] for c in cb.draft_nodes})
    session.add(_history(cb, "node_added", actor, None, added))
    cb.draft_nodes = built
    await session.flush()
    return cb


async def patch_node(session: AsyncSession, cb: Codebook, node_id: str, patch: NodePatch, actor: str) -> Codebook:
    nodes = [dict(n) for n in cb.draft_nodes]
    target = next((n for n in nodes if n["id"] == node_id), None)
    if target is None:
        raise KeyError(node_id)
    before = dict(target)
    for key, value in patch.model_dump(exclude_none=True).items():
        target[key] = value
    current = [NodeIn.model_validate({k: v for k, v in n.items() if k != "level"}) for n in nodes]
    built = build_tree(current, cb.primary_language)
    session.add(_history(cb, "node_updated", actor, before, target))
    cb.draft_nodes = built
    await session.flush()
    return cb


async def delete_node(session: AsyncSession, cb: Codebook, node_id: str, actor: str) -> Codebook:
    if not any(n["id"] == node_id for n in cb.draft_nodes):
        raise KeyError(node_id)
    doomed = {node_id}
    for _ in range(MAX_LEVEL):
        doomed |= {n["id"] for n in cb.draft_nodes if n["parent_id"] in doomed}
    removed = [n for n in cb.draft_nodes if n["id"] in doomed]
    session.add(_history(cb, "node_deleted", actor, removed, None))
    cb.draft_nodes = [n for n in cb.draft_nodes if n["id"] not in doomed]
    await session.flush()
    return cb


async def publish(session: AsyncSession, cb: Codebook, note: str, actor: str) -> CodebookVersion:
    """Publish the draft of `cb` (locked: `get(..., for_update=True)`) as its next version."""
    cb.latest_version += 1
    version = CodebookVersion(
        tenant_id=cb.tenant_id,
        codebook_id=cb.id,
        version=cb.latest_version,
        nodes=cb.draft_nodes,
        fingerprint=fingerprint(cb.draft_nodes),
        note=note,
        published_by=actor,
    )
    session.add(version)
    session.add(_history(cb, "published", actor, None, {"version": cb.latest_version, "note": note}))
    await session.flush()
    return version


async def activate(session: AsyncSession, cb: Codebook, actor: str) -> Codebook:
    """Make `cb` (locked, with the tenant lock held) the active codebook. Raises StateConflictError when it has no
    published version and would displace an active codebook that has one."""
    await _check_can_replace_active(session, cb.tenant_id, cb)
    await _deactivate_others(session, cb.tenant_id, cb.id)
    cb.active = True
    session.add(_history(cb, "activated", actor, None, None))
    await session.flush()
    return cb


async def versions(session: AsyncSession, cb: Codebook) -> list[CodebookVersion]:
    query = (
        select(CodebookVersion)
        .where(CodebookVersion.tenant_id == cb.tenant_id, CodebookVersion.codebook_id == cb.id)
        .order_by(CodebookVersion.version)
    )
    return list((await session.execute(query)).scalars())


async def history(session: AsyncSession, cb: Codebook) -> list[CodebookHistory]:
    query = (
        select(CodebookHistory)
        .where(CodebookHistory.tenant_id == cb.tenant_id, CodebookHistory.codebook_id == cb.id)
        .order_by(CodebookHistory.at, CodebookHistory.id)
    )
    return list((await session.execute(query)).scalars())


async def active_version(session: AsyncSession, tenant_id: uuid.UUID) -> tuple[Codebook, CodebookVersion] | None:
    """The tenant's active codebook and its latest published version (what the analysis worker codes against)."""
    query = (
        select(Codebook, CodebookVersion)
        .join(
            CodebookVersion,
            (CodebookVersion.codebook_id == Codebook.id) & (CodebookVersion.version == Codebook.latest_version),
        )
        .where(Codebook.tenant_id == tenant_id, Codebook.active.is_(True))
    )
    row = (await session.execute(query)).first()
    return (row[0], row[1]) if row is not None else None
