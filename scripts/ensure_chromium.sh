#!/usr/bin/env bash
# Browser tests drive Debian's Chromium through Playwright (no browser download from a CDN).
# Installs the `chromium` package when it is missing; prints one line and fails when it cannot.
set -euo pipefail
if [[ -n "${CX_CHROMIUM:-}" && -x "${CX_CHROMIUM}" ]] || command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_chromium: no chromium and no apt-get; install Chromium and set CX_CHROMIUM=/path/to/chromium" >&2
  exit 1
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "ensure_chromium: chromium is missing and installing it needs root (apt-get install chromium)" >&2
    exit 1
  fi
fi
echo "ensure_chromium: installing Debian's chromium for the browser tests (once)"
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
    || { $SUDO apt-get update -qq >/dev/null 2>&1 && $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; }; }; then
  echo "ensure_chromium: apt-get install chromium failed" >&2
  exit 1
fi
