"""The runbook covers what the manifests expect from the SRE: every Secret, every alert, every install step."""

from __future__ import annotations

import re

import k8s_rules
from k8s_rules import by_kind

README = (k8s_rules.K8S_DIR / "README.md").read_text()


def test_every_referenced_secret_is_documented(rendered):
    secrets = set()
    for name in ("overlay:dev", "overlay:prod"):
        secrets |= k8s_rules.external_secrets(rendered[name])
    assert len(secrets) >= 13
    undocumented = {s for s in secrets if f"`{s}`" not in README}
    # grouped rows document cx-<svc>-db / cx-<svc>-secrets by listing every name
    assert undocumented == set()


def test_every_alert_has_a_runbook_section(rendered):
    alerts = {
        r["alert"]
        for rule in by_kind(rendered["overlay:prod"], "PrometheusRule")
        for g in rule["spec"]["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    headings = set(re.findall(r"(?m)^### (Cx\w+)$", README))
    assert alerts and alerts == headings
    for rule in by_kind(rendered["overlay:prod"], "PrometheusRule"):
        for g in rule["spec"]["groups"]:
            for r in g["rules"]:
                assert r["annotations"]["runbook"] == f"deploy/k8s/README.md#{r['alert'].lower()}"


def test_runbook_covers_the_operations():
    for topic in (
        "Install order",
        "Secrets",
        "migrations first",
        "Scaling nlp on GPUs",
        "What drives the autoscaler",
        "CX_NLP_MAX_BATCH_SIZE",
        "CX_NLP_MAX_LATENCY_MS",
        "GPU memory per replica",
        "Adding a GPU node pool",
        "zero downtime",
        "Backup and restore",
        "Alerts",
    ):
        assert topic in README, topic


def test_phased_apply_labels_match_the_runbook(rendered):
    """The runbook applies everything but `cx.platform/phase=rollout` first: exactly the Deployments carry it."""
    assert "-l 'cx.platform/phase!=rollout'" in README
    for name in ("overlay:dev", "overlay:prod"):
        labelled = {
            k8s_rules.ident(o)
            for o in rendered[name]
            if o["metadata"].get("labels", {}).get("cx.platform/phase") == "rollout"
        }
        deployments = {k8s_rules.ident(o) for o in by_kind(rendered[name], "Deployment")}
        assert labelled == deployments
