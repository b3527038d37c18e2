"""What each overlay promises: dev = one replica, CPU nlp, in-cluster Postgres/NATS; prod = HA, GPU nlp, KEDA,
ingress, monitoring, backups."""

from __future__ import annotations

import re

import k8s_rules
from k8s_rules import by_kind, containers, find, pod_spec


def _config(objs, prefix):
    return next(c["data"] for c in by_kind(objs, "ConfigMap") if c["metadata"]["name"].startswith(prefix))


def test_dev_is_small_cpu_and_self_contained(rendered):
    objs = rendered["overlay:dev"]
    assert find(objs, "StatefulSet", "nats")["spec"]["replicas"] == 1
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h["spec"] for h in by_kind(objs, "HorizontalPodAutoscaler")}
    assert set(hpas) == set(k8s_rules.SERVICES)
    assert all((h["minReplicas"], h["maxReplicas"]) == (1, 1) for h in hpas.values())
    assert by_kind(objs, "ScaledObject") == [] and by_kind(objs, "Ingress") == []
    assert _config(objs, "nlp-config")["CX_NLP_DEVICE"] == "cpu"
    assert find(objs, "Deployment", "nlp")["spec"]["template"]["spec"]["containers"][0]["image"].endswith(
        "/cx-nlp:0.1.0"
    )
    cluster = find(objs, "Cluster", "cx-postgres")
    assert cluster["spec"]["instances"] == 1 and "backup" not in cluster["spec"]
    assert by_kind(objs, "ScheduledBackup") == []
    nats_conf = _config(objs, "nats-config")["nats.conf"]
    assert "jetstream {" in nats_conf and "cluster {" not in nats_conf and "routes" not in nats_conf


def test_prod_is_ha_gpu_autoscaled_exposed_and_monitored(rendered):
    objs = rendered["overlay:prod"]
    minimum = {
        h["spec"]["scaleTargetRef"]["name"]: h["spec"]["minReplicas"] for h in by_kind(objs, "HorizontalPodAutoscaler")
    }
    minimum |= {
        s["spec"]["scaleTargetRef"]["name"]: s["spec"]["minReplicaCount"] for s in by_kind(objs, "ScaledObject")
    }
    for d in by_kind(objs, "Deployment"):
        assert minimum[d["metadata"]["name"]] >= 2, k8s_rules.ident(d)
        spread = pod_spec(d)["topologySpreadConstraints"]
        assert {(c["topologyKey"], c["whenUnsatisfiable"]) for c in spread} >= {
            ("kubernetes.io/hostname", "DoNotSchedule")
        }
    # GPU nlp
    nlp = find(objs, "Deployment", "nlp")
    bento = next(c for c in containers(nlp) if c["name"] == "bentoml")
    assert bento["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert bento["image"] == "ghcr.io/cx-platform/cx-nlp-cuda:0.1.0"
    assert pod_spec(nlp)["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    config = _config(objs, "nlp-config")
    assert (config["CX_NLP_DEVICE"], config["CX_NLP_WORKERS"]) == ("cuda", "1")
    assert int(config["CX_NLP_MAX_BATCH_SIZE"]) >= 64 and int(config["CX_NLP_MAX_LATENCY_MS"]) > 0
    # KEDA replaces the CPU HPAs of nlp and ingest
    assert {s["metadata"]["name"] for s in by_kind(objs, "ScaledObject")} == {"nlp", "ingest"}
    assert {h["metadata"]["name"] for h in by_kind(objs, "HorizontalPodAutoscaler")} == {"gateway", "survey", "alerts"}
    # ingress: two hosts, the partner API with its own (stricter) limits
    ingresses = {i["metadata"]["name"]: i for i in by_kind(objs, "Ingress")}
    assert set(ingresses) == {"gateway", "partner-api"}
    hosts = {name: i["spec"]["rules"][0]["host"] for name, i in ingresses.items()}
    assert hosts["gateway"] != hosts["partner-api"]
    assert ingresses["partner-api"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "ingest"
    rps = {n: int(i["metadata"]["annotations"]["nginx.ingress.kubernetes.io/limit-rps"]) for n, i in ingresses.items()}
    assert rps["partner-api"] < rps["gateway"]
    # monitoring
    assert {s["metadata"]["name"] for s in by_kind(objs, "ServiceMonitor")} == set(k8s_rules.SERVICES)
    assert by_kind(objs, "PrometheusRule")
    # Postgres HA with backups, NATS cluster of 3
    cluster = find(objs, "Cluster", "cx-postgres")
    assert cluster["spec"]["instances"] == 3 and cluster["spec"]["backup"]["barmanObjectStore"]["destinationPath"]
    assert find(objs, "ScheduledBackup", "cx-postgres-daily")["spec"]["cluster"]["name"] == "cx-postgres"
    assert find(objs, "StatefulSet", "nats")["spec"]["replicas"] == 3
    assert "routes" in _config(objs, "nats-config")["nats.conf"]


def test_services_point_at_each_other_and_at_the_infrastructure(rendered):
    objs = rendered["overlay:prod"]
    platform = _config(objs, "cx-platform-config")
    assert platform["CX_GATEWAY_URL"] == "http://gateway:8000"
    assert platform["CX_NLP_GRPC_TARGET"].endswith("nlp-grpc:50051")
    assert find(objs, "Service", "nlp-grpc")["spec"]["clusterIP"] == "None"
    for svc, port in k8s_rules.FASTAPI_SERVICES.items():
        cfg = _config(objs, f"{svc}-config")
        prefix = f"CX_{svc.upper()}_"
        assert cfg[prefix + "PORT"] == str(port)
        assert cfg[prefix + "ENVIRONMENT"] == "prod"
        assert cfg[prefix + "JWT_JWKS_URL"] == "http://gateway:8000/api/v1/auth/jwks"
        deploy = find(objs, "Deployment", svc)
        (c,) = list(containers(deploy))
        assert c["args"] == ["serve", "--host", "0.0.0.0", "--port", str(port)]
        url = next(e["value"] for e in c["env"] if e["name"] == prefix + "DATABASE_URL")
        assert re.fullmatch(
            r"postgresql\+asyncpg://\$\(DB_USERNAME\):\$\(DB_PASSWORD\)@\$\(CX_DB_HOST\):\$\(CX_DB_PORT\)/\$\(CX_DB_NAME\)",
            url,
        )
        # the variables the URL expands are defined before it (Kubernetes expands only earlier variables)
        names = [e["name"] for e in c["env"]]
        assert names.index("DB_PASSWORD") < names.index(prefix + "DATABASE_URL")
        assert find(objs, "Service", svc)["spec"]["ports"][0]["port"] == port


def test_gpu_resource_only_in_the_gpu_component_sources():
    offenders = [
        p.relative_to(k8s_rules.K8S_DIR)
        for p in k8s_rules.K8S_DIR.rglob("*.yaml")
        if "nvidia.com/gpu:" in p.read_text() and "components/gpu" not in str(p)
    ]
    assert offenders == []


def test_no_latest_tags_in_sources():
    pattern = re.compile(r"image:\s*\S+:latest\b|newTag:\s*latest\b")
    offenders = [p for p in k8s_rules.K8S_DIR.rglob("*.yaml") if pattern.search(p.read_text())]
    assert offenders == []
