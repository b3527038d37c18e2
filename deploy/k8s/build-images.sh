#!/usr/bin/env bash
# Builds the container images of the five services (plus the CUDA variant of nlp) from the repository root.
#   deploy/k8s/build-images.sh [--push] [--only gateway,nlp,...]
# Env: CX_IMAGE_REGISTRY (default ghcr.io/cx-platform), CX_IMAGE_TAG (default: version in services/gateway/pyproject),
#      CX_IMAGE_BUILDER (docker|podman; default: the first one that can reach its engine),
#      CX_IMAGES_REQUIRED=1 to exit 1 when no builder is available (default: say so in one line and exit 0).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
registry="${CX_IMAGE_REGISTRY:-ghcr.io/cx-platform}"
tag="${CX_IMAGE_TAG:-$(sed -n 's/^version = "\(.*\)"/\1/p' services/gateway/pyproject.toml | head -1)}"
push=0
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --push) push=1 ;;
    --only) only="$2"; shift ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "build-images: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

builder=""
for candidate in ${CX_IMAGE_BUILDER:-docker podman}; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" info >/dev/null 2>&1; then builder="$candidate"; break; fi
done
if [ -z "$builder" ]; then
  echo "build-images: no container builder here (no reachable docker or podman engine); no images were built"
  [ "${CX_IMAGES_REQUIRED:-0}" = "1" ] && exit 1
  exit 0
fi

# name|dockerfile|extra build args
images=(
  "cx-gateway|deploy/docker/service.Dockerfile|--build-arg SERVICE=gateway --build-arg PORT=8000"
  "cx-survey|deploy/docker/service.Dockerfile|--build-arg SERVICE=survey --build-arg PORT=8001"
  "cx-ingest|deploy/docker/service.Dockerfile|--build-arg SERVICE=ingest --build-arg PORT=8002"
  "cx-alerts|deploy/docker/service.Dockerfile|--build-arg SERVICE=alerts --build-arg PORT=8003"
  "cx-nlp|services/nlp/Dockerfile|--build-arg TORCH_VARIANT=cpu"
  "cx-nlp-cuda|services/nlp/Dockerfile|--build-arg TORCH_VARIANT=cuda"
)
built=0
for spec in "${images[@]}"; do
  IFS='|' read -r name dockerfile extra <<<"$spec"
  svc="${name#cx-}"; svc="${svc%-cuda}"
  if [ -n "$only" ] && [[ ",$only," != *",$svc,"* ]]; then continue; fi
  ref="$registry/$name:$tag"
  echo "==> $builder build $ref"
  # shellcheck disable=SC2086
  "$builder" build -f "$dockerfile" $extra -t "$ref" .
  if [ "$push" = "1" ]; then "$builder" push "$ref"; fi
  built=$((built + 1))
done
echo "build-images: built $built image(s) with $builder, tag $tag"
