#!/usr/bin/env bash
# Create or update .venv so that `make run` / `make test` work on a fresh clone.
# Re-installs only when a pyproject.toml or constraints.txt changed since the last install.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
venv="$root/.venv"
python="${CX_PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      python="$candidate"; break
    fi
  done
fi
if [ -z "$python" ]; then echo "error: Python 3.11 is required (set CX_PYTHON to its path)" >&2; exit 1; fi

stamp="$venv/.cx-install-stamp"
want="$(cat constraints.txt $(git ls-files '*pyproject.toml' 2>/dev/null || find . -name pyproject.toml -not -path './.venv/*') | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
# This machine's pip config lists extra local indexes; hide its noise about their missing entries.
quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
echo "==> installing Python packages into .venv (first time takes a few minutes)"
quiet "${pip[@]}" install -c constraints.txt pip setuptools wheel
# torch first, from the pinned version, so pip picks the CPU wheel available on this machine
quiet "${pip[@]}" install -c constraints.txt torch
packages=(-e libs/cx-protos -e libs/cx-common -e deploy/local)
for svc in services/*/; do [ -f "$svc/pyproject.toml" ] && packages+=(-e "${svc%/}[dev]"); done
quiet "${pip[@]}" install -c constraints.txt "${packages[@]}" -r requirements-dev.txt
echo "$want" > "$stamp"
echo "==> .venv ready"
