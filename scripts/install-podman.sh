#!/usr/bin/env bash
# Install what building and running the image needs, from Debian: podman with runc (crun fails on this
# kernel's cgroups, see scripts/podman.sh) and debootstrap (the base image where no registry is reachable,
# see scripts/build-image.sh). Idempotent and quiet; needs root (CI runs as root).
# Usage: bash scripts/install-podman.sh
set -euo pipefail

if command -v podman >/dev/null && command -v runc >/dev/null && command -v debootstrap >/dev/null; then
  echo "podman: $(podman --version) with $(runc --version | head -1) (already installed)"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends podman runc debootstrap uidmap ca-certificates >/dev/null
echo "podman: $(podman --version) with $(runc --version | head -1)"
