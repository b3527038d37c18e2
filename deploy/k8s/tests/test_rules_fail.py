"""Each house rule and the schema check report a violation when the manifests are broken on purpose."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import k8s_rules
import pytest
from k8s_rules import containers, find, pod_spec

Objs = list[dict[str, Any]]


def _container(objs: Objs, kind: str, name: str, container: str | None = None) -> dict[str, Any]:
    w = find(objs, kind, name)
    return next(c for c in containers(w) if container in (None, c["name"]))


def _drop_ro_rootfs(objs: Objs) -> None:
    del _container(objs, "Deployment", "gateway")["securityContext"]["readOnlyRootFilesystem"]


def _root_user(objs: Objs) -> None:
    _container(objs, "Job", "survey-migrate")["securityContext"]["runAsUser"] = 0


def _keep_capabilities(objs: Objs) -> None:
    _container(objs, "StatefulSet", "nats")["securityContext"]["capabilities"] = {"drop": ["NET_RAW"]}


def _no_readiness(objs: Objs) -> None:
    del _container(objs, "Deployment", "alerts")["readinessProbe"]


def _tcp_liveness_for_grpc(objs: Objs) -> None:
    _container(objs, "Deployment", "nlp", "grpc")["livenessProbe"] = {"tcpSocket": {"port": 50051}}


def _no_limits(objs: Objs) -> None:
    del _container(objs, "Deployment", "ingest")["resources"]["limits"]


def _inline_secret(objs: Objs) -> None:
    objs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "oops", "namespace": "cx"}})


def _literal_password_env(objs: Objs) -> None:
    _container(objs, "Deployment", "survey")["env"].append({"name": "CX_SURVEY_INTERNAL_SECRET", "value": "hunter2"})


def _password_in_url(objs: Objs) -> None:
    env = _container(objs, "Deployment", "gateway")["env"]
    next(e for e in env if e["name"] == "CX_GATEWAY_DATABASE_URL")["value"] = "postgresql://cx_gateway:pw@db:5432/cx"


def _latest_image(objs: Objs) -> None:
    _container(objs, "Deployment", "survey")["image"] = "ghcr.io/cx-platform/cx-survey:latest"


def _untagged_image(objs: Objs) -> None:
    _container(objs, "Deployment", "survey")["image"] = "ghcr.io/cx-platform/cx-survey"


def _no_autoscaler(objs: Objs) -> None:
    objs.remove(find(objs, "HorizontalPodAutoscaler", "gateway"))


def _hpa_and_keda(objs: Objs) -> None:
    hpa = copy.deepcopy(find(objs, "HorizontalPodAutoscaler", "gateway"))
    hpa["metadata"]["name"] = hpa["spec"]["scaleTargetRef"]["name"] = "nlp"
    objs.append(hpa)


def _fixed_replicas(objs: Objs) -> None:
    find(objs, "Deployment", "survey")["spec"]["replicas"] = 3


def _no_pdb(objs: Objs) -> None:
    objs.remove(find(objs, "PodDisruptionBudget", "nats"))


def _no_default_deny(objs: Objs) -> None:
    objs.remove(find(objs, "NetworkPolicy", "default-deny-all"))


def _extra_path(objs: Objs) -> None:
    for name, direction, peer_key, rule_key, selected, peer in (
        ("x-egress", "Egress", "to", "egress", "survey", "alerts"),
        ("x-ingress", "Ingress", "from", "ingress", "alerts", "survey"),
    ):
        objs.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": name, "namespace": "cx"},
                "spec": {
                    "podSelector": {"matchLabels": {"app.kubernetes.io/name": selected}},
                    "policyTypes": [direction],
                    rule_key: [
                        {
                            peer_key: [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": peer}}}],
                            "ports": [{"protocol": "TCP", "port": 8003}],
                        }
                    ],
                },
            }
        )


def _gateway_to_the_internet(objs: Objs) -> None:
    policy = copy.deepcopy(find(objs, "NetworkPolicy", "alerts-egress-notifications"))
    policy["metadata"]["name"] = "gateway-out"
    policy["spec"]["podSelector"] = {"matchLabels": {"app.kubernetes.io/name": "gateway"}}
    objs.append(policy)


def _no_migration_job(objs: Objs) -> None:
    objs.remove(find(objs, "Job", "ingest-migrate"))


def _migration_with_other_role(objs: Objs) -> None:
    env = _container(objs, "Job", "alerts-migrate")["env"]
    env[0]["valueFrom"]["secretKeyRef"]["name"] = "cx-postgres-admin"


def _gpu_on_gateway(objs: Objs) -> None:
    _container(objs, "Deployment", "gateway")["resources"]["limits"]["nvidia.com/gpu"] = "1"


def _bogus_consumer(objs: Objs) -> None:
    so = find(objs, "ScaledObject", "ingest")
    next(t for t in so["spec"]["triggers"] if t["type"] == "nats-jetstream")["metadata"]["consumer"] = "whatever"


def _role_superuser(objs: Objs) -> None:
    find(objs, "Cluster", "cx-postgres")["spec"]["managed"]["roles"][1]["superuser"] = True


def _no_spread(objs: Objs) -> None:
    del pod_spec(find(objs, "Deployment", "survey"))["topologySpreadConstraints"]


def _default_service_account(objs: Objs) -> None:
    pod_spec(find(objs, "Deployment", "alerts"))["serviceAccountName"] = "default"


def _service_without_pods(objs: Objs) -> None:
    find(objs, "Service", "survey")["spec"]["selector"] = {"app.kubernetes.io/name": "surv"}


BREAKAGES: dict[str, tuple[Callable[[Objs], None], str]] = {
    "read-write root fs": (_drop_ro_rootfs, "readOnlyRootFilesystem"),
    "root user": (_root_user, "runAsUser"),
    "capabilities kept": (_keep_capabilities, "drop ALL"),
    "missing probe": (_no_readiness, "no readinessProbe"),
    "grpc probe not native": (_tcp_liveness_for_grpc, "not a native grpc probe"),
    "no limits": (_no_limits, "resources.limits"),
    "secret object": (_inline_secret, "Secrets must be created out of band"),
    "literal secret env": (_literal_password_env, "literal value"),
    "password in url": (_password_in_url, "literal password"),
    "latest tag": (_latest_image, ":latest"),
    "untagged": (_untagged_image, "has no tag"),
    "no autoscaler": (_no_autoscaler, "no HPA or KEDA"),
    "hpa and keda": (_hpa_and_keda, "both an HPA and a KEDA"),
    "replicas fixed under an autoscaler": (_fixed_replicas, "sets spec.replicas"),
    "no pdb": (_no_pdb, "no PodDisruptionBudget"),
    "no default deny": (_no_default_deny, "no default-deny"),
    "path not in architecture": (_extra_path, "survey -> alerts:8003"),
    "egress to the internet": (_gateway_to_the_internet, "only for alerts' notifications"),
    "no migration job": (_no_migration_job, "missing Job/ingest-migrate"),
    "migration with another role": (_migration_with_other_role, "want only cx-alerts-db"),
    "gpu outside nlp": (_gpu_on_gateway, "only nlp/bentoml may"),
    "keda consumer unknown": (_bogus_consumer, "not a service's durable name"),
    "superuser role": (_role_superuser, "not a plain login role"),
    "no topology spread": (_no_spread, "no topology spread"),
    "default service account": (_default_service_account, "default ServiceAccount"),
    "service selects nothing": (_service_without_pods, "selects no Pods"),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_house_rule_catches(rendered, breakage):
    objs = copy.deepcopy(rendered["overlay:prod"])
    assert k8s_rules.house_rules(objs, gpu_expected=True) == []
    mutate, expected = BREAKAGES[breakage]
    mutate(objs)
    problems = k8s_rules.house_rules(objs, gpu_expected=True)
    assert any(expected in p for p in problems), problems


def test_gpu_component_missing_is_caught(rendered):
    problems = k8s_rules.check_gpu(rendered["base-only"], gpu_expected=True)
    assert any("does not request nvidia.com/gpu" in p for p in problems)
    problems = k8s_rules.check_gpu(rendered["base+gpu"], gpu_expected=False)
    assert any("without the gpu component" in p for p in problems)


def test_schema_catches_unknown_fields_wrong_types_and_unknown_kinds(rendered):
    objs = copy.deepcopy(rendered["overlay:dev"])
    _container(objs, "Deployment", "gateway")["imagePulPolicy"] = "Always"  # typo: strict schema rejects it
    pod_spec(find(objs, "Deployment", "survey"))["terminationGracePeriodSeconds"] = "thirty"
    objs.append({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})
    problems = k8s_rules.check_schema(objs, k8s_rules.KUBERNETES_VERSIONS[0])
    assert any("Deployment/gateway" in p and "imagePulPolicy" in p for p in problems), problems
    assert any("Deployment/survey" in p and "terminationGracePeriodSeconds" in p for p in problems), problems
    assert any("Widget/w" in p and "no schema" in p for p in problems), problems
