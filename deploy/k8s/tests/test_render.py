"""Every overlay and component combination renders with kustomize, passes the Kubernetes schemas (strict) and the
house rules of k8s_rules."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import k8s_rules
import pytest

TARGETS = [f"overlay:{o}" for o in k8s_rules.OVERLAYS] + [k8s_rules.combo_name(c) for c in k8s_rules.QUICK_COMBINATIONS]


def gpu_expected(name: str) -> bool:
    return name == "overlay:prod" or "gpu" in name.split("+")


@pytest.mark.parametrize("version", k8s_rules.KUBERNETES_VERSIONS)
@pytest.mark.parametrize("target", TARGETS)
def test_schema_strict(rendered, target, version):
    assert k8s_rules.check_schema(rendered[target], version) == []


@pytest.mark.parametrize("target", TARGETS)
def test_house_rules(rendered, target):
    assert k8s_rules.house_rules(rendered[target], gpu_expected=gpu_expected(target)) == []


@pytest.mark.parametrize("target", TARGETS)
def test_required_paths_are_open(rendered, target):
    """The NetworkPolicies must not only forbid: every path of ARCHITECTURE.md between our services is open."""
    assert k8s_rules.REQUIRED_APP_PATHS - k8s_rules.app_paths(rendered[target]) == set()


@pytest.mark.parametrize("target", TARGETS)
def test_only_known_custom_resources(rendered, target):
    kinds = {(o["apiVersion"].rpartition("/")[0], o["kind"]) for o in rendered[target]}
    custom = {k for k in kinds if "." in k[0] and not k[0].endswith("k8s.io")}
    assert custom <= k8s_rules.CRD_KINDS


@pytest.mark.slow
def test_every_component_combination(tmp_path: Path):
    """All 2^6 combinations of components on the base render and pass the schemas and house rules."""
    combos = [c for r in range(len(k8s_rules.COMPONENTS) + 1) for c in itertools.combinations(k8s_rules.COMPONENTS, r)]
    dirs = [k8s_rules.combination_dir(tmp_path, c) for c in combos]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(k8s_rules.render, dirs))
    assert len(results) == 64
    failures = {}
    for combo, objs in zip(combos, results, strict=True):
        problems = k8s_rules.check_schema(objs, k8s_rules.KUBERNETES_VERSIONS[0])
        problems += k8s_rules.house_rules(objs, gpu_expected="gpu" in combo)
        if problems:
            failures[k8s_rules.combo_name(combo)] = problems
    assert failures == {}
