"""Tenant codebooks (3-level aspect trees): compilation and aspect/opinion matching.

Matching runs per clause and combines
- keyword rules: node keywords and names in every language (Traditional folded to Simplified, case-folded,
  word boundaries for Latin terms that count Han characters as non-word, so "delivery" matches in 我的delivery),
  the deepest matching node wins;
- embeddings: every clause is compared with the node names and example phrases of the leaf nodes (embedded once,
  at compile time); the best node above the encoder's threshold matches. When it lies under a keyword-matched node
  (服务 inside 服务员上菜太慢了), the deeper leaf replaces that node and is matched by "keyword+embedding".
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

import numpy as np

from cx_nlp.models.api import AspectMatch, CodebookNodeSpec
from cx_nlp.models.components import Encoder
from cx_nlp.models.rules import LATIN_AFTER, LATIN_BEFORE, LATIN_WORD
from cx_nlp.models.text import clauses, normalize

_LANG_FALLBACK = ("zh-Hans", "zh-Hant", "en")


def _name(node: CodebookNodeSpec, language: str) -> str:
    if node.names.get(language):
        return node.names[language]
    if language.startswith("zh"):
        for lang in ("zh-Hans", "zh-Hant", "zh"):
            if node.names.get(lang):
                return node.names[lang]
    for lang in _LANG_FALLBACK:
        if node.names.get(lang):
            return node.names[lang]
    return next(iter(node.names.values()), node.id)


def fingerprint(nodes: list[CodebookNodeSpec], primary_language: str) -> str:
    canon = [
        {
            "id": n.id,
            "parent_id": n.parent_id,
            "level": n.level,
            "names": dict(sorted(n.names.items())),
            "keywords": list(n.keywords),
            "examples": list(n.examples),
        }
        for n in sorted(nodes, key=lambda n: n.id)
    ]
    blob = json.dumps({"primary_language": primary_language, "nodes": canon}, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _term_pattern(term: str) -> re.Pattern[str] | None:
    norm = normalize(term).strip()
    if not norm:
        return None
    escaped = re.escape(norm).replace(r"\ ", r"\s+")
    # Latin boundaries, not `\b`: Python counts Han characters as word characters ("5g" in 5g信号差)
    if re.match(rf"[{LATIN_WORD}]", norm):
        escaped = LATIN_BEFORE + escaped
    if re.search(rf"[{LATIN_WORD}]$", norm):
        escaped += r"(?:s|es|ed|ing)?" + LATIN_AFTER
    return re.compile(escaped)


@dataclass
class CompiledNode:
    spec: CodebookNodeSpec
    path: list[str]
    depth: int
    patterns: list[re.Pattern[str]] = field(default_factory=list)
    ancestors: frozenset[str] = frozenset()


@dataclass
class Codebook:
    fingerprint: str
    node_count: int
    primary_language: str
    nodes: list[CompiledNode]
    leaf_index: list[int]  # node index of each row of `example_vectors`
    example_vectors: np.ndarray  # (m, d)
    threshold: float

    def match(
        self,
        text: str,
        clause_vectors: np.ndarray | None,
        spans: list[tuple[int, int]],
        polarities: list[tuple[str, float]],
    ) -> list[AspectMatch]:
        norm = normalize(text)
        out: list[AspectMatch] = []
        for ci, (start, end) in enumerate(spans):
            segment = norm[start:end]
            kw: dict[int, int] = {}
            for ni, node in enumerate(self.nodes):
                if any(p.search(segment) for p in node.patterns):
                    kw[ni] = node.depth
            # keep the deepest hits only (a child's keyword beats its parent's)
            kw_nodes = {ni for ni in kw if not any(self._is_ancestor(ni, other) for other in kw if other != ni)}
            sims: dict[int, float] = {}
            if clause_vectors is not None and len(self.leaf_index):
                row = self.example_vectors @ clause_vectors[ci]
                for r, node_i in enumerate(self.leaf_index):
                    sims[node_i] = max(sims.get(node_i, -1.0), float(row[r]))
            best_emb = max(sims.items(), key=lambda kv: kv[1]) if sims else None
            chosen: dict[int, str] = {ni: "keyword" for ni in kw_nodes}
            if best_emb is not None and best_emb[1] >= self.threshold:
                ni = best_emb[0]
                covering = [k for k in chosen if self._is_ancestor(k, ni)]
                if ni in chosen:
                    chosen[ni] = "keyword+embedding"
                elif covering:
                    # the deepest match wins: the leaf found by embedding under a shallower keyword hit replaces it
                    for k in covering:
                        del chosen[k]
                    chosen[ni] = "keyword+embedding"
                elif not any(self._is_ancestor(ni, k) for k in chosen):
                    chosen[ni] = "embedding"
            for ni in kw_nodes:
                if chosen.get(ni) == "keyword" and sims.get(ni, -1.0) >= self.threshold:
                    chosen[ni] = "keyword+embedding"
            polarity, pconf = polarities[ci]
            for ni, how in sorted(chosen.items()):
                sim = max(0.0, sims.get(ni, 0.0))
                if how == "embedding":
                    conf = 0.5 + 0.5 * (sim - self.threshold) / max(1e-6, 1.0 - self.threshold)
                else:
                    conf = 0.75 + 0.25 * sim
                node = self.nodes[ni]
                out.append(
                    AspectMatch(
                        path=list(node.path),
                        node_id=node.spec.id,
                        opinion=text[start:end],
                        start=start,
                        end=end,
                        polarity=polarity,
                        confidence=round(min(0.99, conf * (0.7 + 0.3 * pconf)), 4),
                        matched_by=how,
                    )
                )
        return out

    def _is_ancestor(self, a: int, b: int) -> bool:
        """True when node a is an ancestor of node b."""
        return self.nodes[a].spec.id in self.nodes[b].ancestors


def compile_codebook(
    nodes: list[CodebookNodeSpec], primary_language: str, encoder: Encoder | None, threshold: float
) -> Codebook:
    by_id: dict[str, CodebookNodeSpec] = {}
    for n in nodes:
        if not n.id:
            raise ValueError("codebook node without id")
        if n.id in by_id:
            raise ValueError(f"duplicate codebook node id {n.id!r}")
        if not 1 <= n.level <= 3:
            raise ValueError(f"node {n.id!r}: level must be 1..3, got {n.level}")
        if not n.names:
            raise ValueError(f"node {n.id!r} has no name")
        by_id[n.id] = n
    for n in nodes:
        if n.level == 1:
            if n.parent_id:
                raise ValueError(f"level-1 node {n.id!r} must not have a parent")
        else:
            parent = by_id.get(n.parent_id)
            if parent is None:
                raise ValueError(f"node {n.id!r}: unknown parent {n.parent_id!r}")
            if parent.level != n.level - 1:
                raise ValueError(f"node {n.id!r}: level {n.level} under a level-{parent.level} parent")
    compiled: list[CompiledNode] = []
    has_child = {n.parent_id for n in nodes if n.parent_id}
    for n in nodes:
        chain = [n]
        while chain[-1].parent_id:
            chain.append(by_id[chain[-1].parent_id])
        path = [_name(c, primary_language) for c in reversed(chain)]
        terms = list(n.keywords) + list(n.names.values())
        patterns = [p for p in (_term_pattern(t) for t in dict.fromkeys(terms)) if p is not None]
        ancestors = frozenset(c.id for c in chain[1:])
        compiled.append(CompiledNode(spec=n, path=path, depth=n.level, patterns=patterns, ancestors=ancestors))
    leaf_index: list[int] = []
    texts: list[str] = []
    if encoder is not None:
        for i, node in enumerate(compiled):
            if node.spec.id in has_child:
                continue
            parent_names = " ".join(node.path[:-1])
            node_texts = list(node.spec.examples) + [
                f"{parent_names} {name}".strip() for name in dict.fromkeys(node.spec.names.values())
            ]
            for t in node_texts:
                texts.append(t)
                leaf_index.append(i)
    vectors = encoder(texts) if encoder is not None and texts else np.zeros((0, 1), dtype=np.float32)
    return Codebook(
        fingerprint=fingerprint(nodes, primary_language),
        node_count=len(nodes),
        primary_language=primary_language,
        nodes=compiled,
        leaf_index=leaf_index,
        example_vectors=vectors.astype(np.float32),
        threshold=threshold,
    )


def clause_spans(text: str) -> list[tuple[int, int]]:
    return list(clauses(text))
