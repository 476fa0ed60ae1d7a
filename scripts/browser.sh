#!/usr/bin/env bash
# What the web console's browser tests need beyond the Python packages: Debian's
# Chromium, driven by Playwright (whose own browser downloads are never used).
# Idempotent: returns at once when chromium is already installed.
set -euo pipefail

CHROMIUM=${WEAVER_CHROMIUM:-/usr/bin/chromium}
[[ -x $CHROMIUM ]] && exit 0

as_root() { if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

if ! command -v apt-get >/dev/null; then
  echo "[browser] no apt-get here: install Chromium and set WEAVER_CHROMIUM to its path" >&2
  exit 0
fi
echo "[browser] apt: installing chromium" >&2
as_root apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >&2
