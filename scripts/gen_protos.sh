#!/usr/bin/env bash
# Regenerate libs/cx-protos from protos/. Usage: scripts/gen_protos.sh [OUT_DIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/libs/cx-protos/src}"
py="${PYTHON:-$root/.venv/bin/python}"
case "$py" in /*) ;; *) py="$root/$py" ;; esac
export PATH="$(dirname "$py"):$PATH"
cd "$root/protos"
find "$out/cx" -name '*_pb2*.py*' -delete 2>/dev/null || true
mapfile -t files < <(find cx -name '*.proto' | sort)
"$py" -m grpc_tools.protoc -I. --python_out="$out" --grpc_python_out="$out" \
  --mypy_out="$out" --mypy_grpc_out="$out" "${files[@]}"
for d in cx cx/nlp cx/nlp/v1 cx/events cx/events/v1; do
  mkdir -p "$out/$d"; [ -f "$out/$d/__init__.py" ] || : > "$out/$d/__init__.py"
done
: > "$out/cx/py.typed"
