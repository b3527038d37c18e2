"""Fixtures for the deploy/k8s tests: the overlays and the quick component combinations, rendered once."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import k8s_rules


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """name -> rendered objects; names are `overlay:<name>` and k8s_rules.combo_name(...)."""
    root = tmp_path_factory.mktemp("k8s")
    targets: dict[str, Path] = {f"overlay:{o}": k8s_rules.K8S_DIR / "overlays" / o for o in k8s_rules.OVERLAYS}
    for combo in k8s_rules.QUICK_COMBINATIONS:
        d = k8s_rules.combination_dir(root, combo)
        targets[d.name] = d
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(targets, pool.map(k8s_rules.render, targets.values()), strict=True))
