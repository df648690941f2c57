#!/usr/bin/env bash
# Install the browser tests/e2e/test_web.py drives: Debian's chromium at /usr/bin/chromium, run by
# Playwright for Python (the `playwright` package of the dev extra) through executable_path, so
# `playwright install` (which downloads its own browser builds) is never needed.
# Idempotent and quiet; needs root (CI runs as root). Usage: bash scripts/install-browser.sh
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  echo "browser: $(/usr/bin/chromium --version 2>/dev/null || echo chromium) at /usr/bin/chromium (already installed)"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
echo "browser: $(/usr/bin/chromium --version 2>/dev/null || echo chromium) at /usr/bin/chromium"
