"""Codebooks on the wire: validation, a content fingerprint, conversions, and the per-worker compiled cache.

How codebooks travel (see README): the gRPC adapter keeps the registry (tenant, codebook, version) ->
nodes + fingerprint. Analyze items name the codebook by fingerprint only. A worker that has not compiled that
fingerprint yet answers `codebook_unknown` for those items, and the adapter re-sends them with the nodes
attached once; the worker compiles and caches them (LRU). So every BentoML worker gets each codebook when it
first needs it, whatever the number of workers, and nodes are embedded once per (worker, fingerprint).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from cx_nlp.models.api import CodebookNodeSpec

K = TypeVar("K")
V = TypeVar("V")


class CodebookError(ValueError):
    """A codebook that cannot be used; the message names the offending node."""


def node_to_dict(node: Any) -> dict[str, Any]:
    """A proto CodebookNode (or a mapping with the same fields) as a plain JSON-able dict."""
    if isinstance(node, Mapping):
        get = node.get
        return {
            "id": str(get("id", "")),
            "parent_id": str(get("parent_id", "") or ""),
            "level": int(get("level", 0) or 0),
            "names": {str(k): str(v) for k, v in dict(get("names", {}) or {}).items()},
            "keywords": [str(k) for k in get("keywords", []) or []],
            "examples": [str(e) for e in get("examples", []) or []],
        }
    return {
        "id": node.id,
        "parent_id": node.parent_id,
        "level": int(node.level),
        "names": dict(node.names),
        "keywords": list(node.keywords),
        "examples": list(node.examples),
    }


def validate_nodes(nodes: Sequence[Mapping[str, Any]], *, max_nodes: int) -> None:
    """Raise CodebookError naming the first bad node (by index and id)."""
    if not nodes:
        raise CodebookError("nodes must not be empty")
    if len(nodes) > max_nodes:
        raise CodebookError(f"too many nodes: {len(nodes)} > {max_nodes}")
    by_id: dict[str, Mapping[str, Any]] = {}
    for i, node in enumerate(nodes):
        node_id = node["id"]
        if not node_id:
            raise CodebookError(f"nodes[{i}].id is empty")
        if node_id in by_id:
            raise CodebookError(f"nodes[{i}].id {node_id!r} is duplicated")
        if node["level"] not in (1, 2, 3):
            raise CodebookError(f"nodes[{i}] ({node_id}): level must be 1, 2 or 3, got {node['level']}")
        if not any(str(v).strip() for v in node["names"].values()):
            raise CodebookError(f"nodes[{i}] ({node_id}): names must hold at least one non-empty name")
        by_id[node_id] = node
    for i, node in enumerate(nodes):
        level, parent_id = node["level"], node["parent_id"]
        if level == 1:
            if parent_id:
                raise CodebookError(f"nodes[{i}] ({node['id']}): a level-1 node has no parent_id")
            continue
        parent = by_id.get(parent_id)
        if parent is None:
            raise CodebookError(f"nodes[{i}] ({node['id']}): parent_id {parent_id!r} is not a node of this codebook")
        if parent["level"] != level - 1:
            raise CodebookError(
                f"nodes[{i}] ({node['id']}): a level {level} node under the level {parent['level']} node {parent_id!r}"
            )


def fingerprint(nodes: Sequence[Mapping[str, Any]], primary_language: str) -> str:
    """sha256 over the canonical JSON of the nodes (order-independent) and the primary language."""
    canonical = sorted(
        (
            {
                "id": n["id"],
                "parent_id": n["parent_id"],
                "level": n["level"],
                "names": dict(sorted(n["names"].items())),
                "keywords": list(n["keywords"]),
                "examples": list(n["examples"]),
            }
            for n in nodes
        ),
        key=lambda n: str(n["id"]),
    )
    payload = json.dumps({"primary_language": primary_language, "nodes": canonical}, ensure_ascii=False)
    return "sha256:" + hashlib.sha256(payload.encode("utf-8")).hexdigest()


def to_specs(nodes: Iterable[Mapping[str, Any]]) -> list[CodebookNodeSpec]:
    return [
        CodebookNodeSpec(
            id=n["id"],
            parent_id=n["parent_id"],
            level=int(n["level"]),
            names=dict(n["names"]),
            keywords=tuple(n["keywords"]),
            examples=tuple(n["examples"]),
        )
        for n in nodes
    ]


class LruCache(Generic[K, V]):
    """A small thread-safe LRU map."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.capacity:
                self._data.popitem(last=False)

    def get_or_create(self, key: K, factory: Callable[[], V]) -> V:
        value = self.get(key)
        if value is None:
            value = factory()
            self.put(key, value)
        return value

    def __len__(self) -> int:
        return len(self._data)


def _n(
    node_id: str,
    parent: str,
    level: int,
    zh: str,
    en: str,
    keywords: Sequence[str] = (),
    examples: Sequence[str] = (),
) -> dict[str, Any]:
    return {
        "id": node_id,
        "parent_id": parent,
        "level": level,
        "names": {"zh-Hans": zh, "en": en},
        "keywords": list(keywords),
        "examples": list(examples),
    }


# A small generic retail/service codebook: `cx-nlp predict --task aspects` without --codebook, and demos.
DEMO_CODEBOOK: list[dict[str, Any]] = [
    _n("svc", "", 1, "服务", "Service"),
    _n("svc.staff", "svc", 2, "员工", "Staff"),
    _n(
        "svc.staff.attitude",
        "svc.staff",
        3,
        "服务态度",
        "Attitude",
        ["态度", "服务员", "attitude", "rude", "friendly"],
    ),
    _n("svc.wait", "svc", 2, "等待", "Waiting"),
    _n("svc.wait.queue", "svc.wait", 3, "排队时间", "Queue time", ["排队", "等了", "queue", "wait", "waited"]),
    _n("prod", "", 1, "产品", "Product"),
    _n("prod.quality", "prod", 2, "质量", "Quality"),
    _n("prod.quality.defect", "prod.quality", 3, "质量问题", "Defects", ["坏了", "质量", "broken", "defect"]),
    _n("prod.price", "prod", 2, "价格", "Price"),
    _n(
        "prod.price.value",
        "prod.price",
        3,
        "性价比",
        "Value for money",
        ["价格", "贵", "便宜", "price", "expensive"],
    ),
    _n("dlv", "", 1, "物流", "Delivery"),
    _n("dlv.speed", "dlv", 2, "配送", "Shipping"),
    _n(
        "dlv.speed.late",
        "dlv.speed",
        3,
        "配送时效",
        "Delivery time",
        ["快递", "物流", "发货", "delivery", "late"],
    ),
]
