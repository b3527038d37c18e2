#!/usr/bin/env bash
# `make k8s-check`: offline validation of deploy/k8s and the Dockerfiles (see README "Validation").
# Renders every overlay and all 64 component combinations, validates them against the Kubernetes schemas, the house
# rules, yamllint, hadolint and checkov. Extra arguments go to pytest (e.g. -m "not slow" to skip the 64 combinations).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
exec "$root/.venv/bin/pytest" deploy/k8s/tests -q "$@"
