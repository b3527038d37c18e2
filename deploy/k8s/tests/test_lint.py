"""Linters of the deployment: yamllint on the sources, hadolint and house rules on every Dockerfile, checkov on the
rendered overlays (skips justified in deploy/k8s/.checkov.yaml), and the image build script."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import k8s_rules
import pytest

ROOT = k8s_rules.REPO_ROOT
K8S = k8s_rules.K8S_DIR
SERVICE_DOCKERFILE = ROOT / "deploy" / "docker" / "service.Dockerfile"  # gateway, survey, ingest, alerts
DOCKERFILES = {
    svc: ROOT / "services" / "nlp" / "Dockerfile" if svc == "nlp" else SERVICE_DOCKERFILE for svc in k8s_rules.SERVICES
}
VENV_BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = VENV_BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: it is a dev requirement (make venv)")
    return found


# -- yamllint ---------------------------------------------------------------------------------------------------------
def test_yamllint_sources():
    from yamllint import config, linter

    conf = config.YamlLintConfig(file=str(K8S / ".yamllint.yaml"))
    problems = []
    for path in sorted(K8S.rglob("*.yaml")):
        for p in linter.run(path.read_text(), conf, str(path)):
            problems.append(f"{path.relative_to(ROOT)}:{p.line}:{p.column} {p.level} {p.message} ({p.rule})")
    assert problems == []


def test_yamllint_can_fail():
    from yamllint import config, linter

    conf = config.YamlLintConfig(file=str(K8S / ".yamllint.yaml"))
    assert list(linter.run("a: 1\na: 2\nb:   [x,y]\n", conf))


# -- Dockerfiles ------------------------------------------------------------------------------------------------------
def test_every_service_has_a_dockerfile():
    assert {svc: path.is_file() for svc, path in DOCKERFILES.items()} == dict.fromkeys(DOCKERFILES, True)
    assert (ROOT / ".dockerignore").is_file()


def test_hadolint_passes_on_every_dockerfile():
    proc = subprocess.run(
        [_tool("hadolint"), "--failure-threshold", "info", *sorted(set(map(str, DOCKERFILES.values())))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_can_fail(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y gcc\nUSER root\nCMD python app.py\n")
    proc = subprocess.run([_tool("hadolint"), str(bad)], capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and "DL3007" in proc.stdout


def _stages(text: str) -> list[str]:
    return re.split(r"(?m)^FROM ", text)[1:]


@pytest.mark.parametrize("svc", list(DOCKERFILES))
def test_dockerfile_house_rules(svc):
    text = DOCKERFILES[svc].read_text()
    stages = _stages(text)
    assert len(stages) >= 2, "multi-stage build"
    base = re.search(r"(?m)^ARG PYTHON_IMAGE=(\S+)$", text)
    assert base and re.fullmatch(r"python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base.group(1)), (
        "pinned slim 3.11"
    )
    assert all(s.startswith("${PYTHON_IMAGE}") or s.split()[0] in ("build",) for s in stages), "every stage on the pin"
    final = stages[-1]
    assert re.search(r"(?m)^USER 10001:10001$", final), "non-root user in the final stage"
    assert re.search(r"(?m)^HEALTHCHECK .*\n?.*(/healthz|/livez|/readyz)", final), "HEALTHCHECK via an app endpoint"
    assert not re.search(r"apt-get|apk add|gcc|build-essential|pip install", final), "no build tools in the final stage"
    assert "pip install -c constraints.txt" in text, "installs with the repo's constraints"
    entry = re.search(r'(?m)^ENTRYPOINT \["(cx-[a-z]+)"\]$', text)
    if svc != "nlp":
        assert entry and entry.group(1) == "cx-service"
        assert 'ln -s "cx-${SERVICE}" /opt/venv/bin/cx-service' in text
        assert 'CMD ["serve", "--host", "0.0.0.0"]' in text
        port = k8s_rules.FASTAPI_SERVICES[svc]
        build = (ROOT / "deploy" / "k8s" / "build-images.sh").read_text()
        assert f"cx-{svc}|deploy/docker/service.Dockerfile|--build-arg SERVICE={svc} --build-arg PORT={port}" in build
    else:
        assert entry and entry.group(1) == "cx-nlp"
        assert "CX_NLP_BAKE_MODEL" in text and "cx-nlp build-model --if-missing" in text
        assert "TORCH_VARIANT" in text


def test_dockerignore_keeps_the_context_small_and_secret_free():
    lines = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for needed in ("**/.git", "**/.venv", "**/.cx", "**/.env", "**/__pycache__"):
        assert needed in lines


# -- checkov ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkov() -> str:
    """checkov lives in its own virtualenv (its pins clash with constraints.txt); installed on first use."""
    proc = subprocess.run(
        [str(K8S / "tools" / "install-tools.sh")], capture_output=True, text=True, check=False, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def checkov_report(checkov, rendered, tmp_path_factory) -> dict:
    """One checkov run (it takes seconds to start) over the rendered overlays and a deliberately bad canary."""
    import json

    import yaml

    d = tmp_path_factory.mktemp("checkov")
    (d / "overlays").mkdir()
    for name in ("overlay:dev", "overlay:prod"):
        (d / "overlays" / f"{name.split(':')[1]}.yaml").write_text(yaml.safe_dump_all(rendered[name]))
    (d / "canary").mkdir()
    (d / "canary" / "bad.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: bad, namespace: cx}\n"
        "spec:\n  containers:\n    - name: c\n      image: busybox:1.36\n      securityContext: {privileged: true}\n"
    )
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
    proc = subprocess.run(
        [checkov, "--config-file", str(K8S / ".checkov.yaml"), "-d", str(d), "--skip-download", "--output", "json"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=d,
        timeout=300,
    )
    assert proc.stdout.strip(), proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    return report[0] if isinstance(report, list) else report


def _failed(report: dict) -> list[tuple[str, str, str]]:
    return [(f["check_id"], f["file_path"], f["resource"]) for f in report["results"]["failed_checks"]]


def test_checkov_passes_on_the_overlays(checkov_report):
    failed = [f for f in _failed(checkov_report) if "/canary/" not in f[1]]
    assert failed == []
    assert checkov_report["summary"]["passed"] > 500


def test_checkov_can_fail(checkov_report):
    assert ("CKV_K8S_16", "/canary/bad.yaml", "Pod.cx.bad") in _failed(checkov_report)


def test_every_skipped_checkov_check_is_justified():
    text = (K8S / ".checkov.yaml").read_text()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"\s+- (CKV_\w+)$", line)
        if m:
            assert lines[i - 1].lstrip().startswith("#"), f"{m.group(1)} has no justification comment"


# -- image build script -----------------------------------------------------------------------------------------------
def _path_without_builders(tmp_path: Path) -> str:
    shim = tmp_path / "bin"
    shim.mkdir(exist_ok=True)
    for tool in ("bash", "sed", "head", "dirname", "cat", "env"):
        real = shutil.which(tool)
        if real:
            (shim / tool).symlink_to(real)
    return str(shim)


def test_build_images_says_so_when_no_builder(tmp_path):
    env = {**os.environ, "PATH": _path_without_builders(tmp_path), "CX_IMAGE_BUILDER": "docker podman"}
    proc = subprocess.run([str(K8S / "build-images.sh")], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0
    assert proc.stdout.strip().splitlines() == [
        "build-images: no container builder here (no reachable docker or podman engine); no images were built"
    ]
    env["CX_IMAGES_REQUIRED"] = "1"
    proc = subprocess.run([str(K8S / "build-images.sh")], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 1


def test_build_images_builds_every_image_with_a_builder(tmp_path):
    path = _path_without_builders(tmp_path)
    log = tmp_path / "calls.log"
    fake = Path(path) / "docker"
    # A stand-in for the docker CLI (an external tool) that records how it is called.
    fake.write_text(f'#!/bin/bash\necho "$*" >> {log}\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": path, "CX_IMAGE_BUILDER": "docker", "CX_IMAGE_TAG": "9.9.9"}
    proc = subprocess.run([str(K8S / "build-images.sh")], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    builds = [line for line in log.read_text().splitlines() if line.startswith("build ")]
    refs = {line.split("-t ")[1].split()[0] for line in builds}
    assert refs == {
        f"ghcr.io/cx-platform/cx-{n}:9.9.9" for n in ("gateway", "survey", "ingest", "alerts", "nlp", "nlp-cuda")
    }
    assert any("TORCH_VARIANT=cuda" in line and "cx-nlp-cuda" in line for line in builds)
    assert all(line.endswith(" .") for line in builds), "context is the repository root"
