#!/usr/bin/env bash
# Installs checkov into its own virtualenv from the pinned deploy/k8s/tools/checkov-requirements.txt and prints the
# checkov path on stdout. checkov needs packaging<24, which clashes with the monorepo's constraints.txt, hence the
# separate environment. It lives in the user's cache (outside the clone, so fresh clones on one machine share it),
# keyed by the requirements' hash; CX_CHECKOV_VENV overrides the location. Idempotent.
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
req="$root/deploy/k8s/tools/checkov-requirements.txt"
want="$(sha256sum "$req" | cut -c1-16)"
venv="${CX_CHECKOV_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/cx-tools/checkov-$want}"
stamp="$venv/.cx-install-stamp"
if [ -x "$venv/bin/checkov" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "$venv/bin/checkov"; exit 0
fi
python="${CX_PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python="$candidate"; break; fi
  done
fi
[ -n "$python" ] || { echo "install-tools: no python3 found" >&2; exit 1; }
echo "==> installing checkov into $venv (first time takes a minute or two)" >&2
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip --disable-pip-version-check -q install -r "$req" \
  2> >(grep -v "is ignored: it is neither a file nor a directory" >&2) >&2
echo "$want" > "$stamp"
echo "$venv/bin/checkov"
