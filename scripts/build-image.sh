#!/usr/bin/env bash
# Build services/Dockerfile into the fleet's image with Debian's podman: `make image`, or
#   bash scripts/build-image.sh [TAG]            (TAG defaults to $SPOT_IMAGE or localhost/spot-exchange:local)
#
# The base (the Dockerfile's PYTHON_IMAGE):
#   * $PYTHON_IMAGE when set;
#   * else the Dockerfile's pinned python:3.11.x-slim-bookworm when a registry answers (podman pull);
#   * else a Debian bookworm made here with debootstrap (python3, python3-venv, python-is-python3,
#     libpython3.11-dev, ca-certificates), imported as localhost/spot-python-base:<hash of that recipe>.
#     Its rootfs tarball is kept in $SPOT_IMAGE_CACHE (default ~/.cache/spot/image), so a machine that lost
#     its podman storage imports it in seconds instead of debootstrapping for minutes again.
#
# What this host needs, and no image keeps:
#   * runc and capped ulimits: scripts/podman.sh;
#   * the host's CA bundle mounted at build time over the image's (with a pip.conf naming it), so pip
#     reaches PyPI through a TLS-intercepting egress proxy; both mounts exist only while RUN steps run;
#   * --format docker: the OCI format has no HEALTHCHECK, podman would drop it;
#   * --network host: no bridge networking (netavark/CNI) needed for the build's downloads.
# Installs podman, runc and debootstrap with apt-get when missing (scripts/install-podman.sh).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
tag="${1:-${SPOT_IMAGE:-localhost/spot-exchange:local}}"
cache="${SPOT_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/spot/image}"
work="${SPOT_PODMAN_DIR:-$root/.spot/podman}"
podman=(bash "$root/scripts/podman.sh")
ca_bundle="${SPOT_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

bash scripts/install-podman.sh
mkdir -p "$cache" "$work"

suite=bookworm
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
packages=python3,python3-venv,python-is-python3,libpython3.11-dev,ca-certificates
recipe_hash="$(printf '%s %s %s' "$suite" "$packages" "$(dpkg --print-architecture)" | sha256sum | cut -c1-12)"
base_tag="localhost/spot-python-base:$suite-$recipe_hash"
pinned="$(sed -n 's/^ARG PYTHON_IMAGE=//p' services/Dockerfile)"

debootstrap_base() {
  local tarball="$cache/rootfs-$suite-$recipe_hash.tar"
  if "${podman[@]}" image exists "$base_tag"; then
    echo "base: $base_tag (in podman's storage)" >&2
  else
    if [ ! -s "$tarball" ]; then
      echo "base: debootstrap $suite ($packages) from $mirror, a few minutes once" >&2
      local rootfs
      rootfs="$(mktemp -d "$work/rootfs.XXXXXX")"
      trap 'rm -rf "$rootfs"' EXIT
      debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
        || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
      printf 'deb %s %s main\ndeb %s %s-updates main\ndeb http://deb.debian.org/debian-security %s-security main\n' \
        "$mirror" "$suite" "$mirror" "$suite" "$suite" > "$rootfs/etc/apt/sources.list"
      rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
      tar -C "$rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
      rm -rf "$rootfs"
      trap - EXIT
    fi
    echo "base: importing $tarball as $base_tag" >&2
    "${podman[@]}" import -q --change 'CMD ["python3"]' --change 'ENV LANG=C.UTF-8' "$tarball" "$base_tag" >/dev/null
  fi
  echo "$base_tag"
}

if [ -n "${PYTHON_IMAGE:-}" ]; then
  base="$PYTHON_IMAGE"
elif "${podman[@]}" image exists "$pinned" || timeout 120 "${podman[@]}" pull -q "$pinned" >/dev/null 2>&1; then
  base="$pinned"
else
  echo "base: no registry answers for $pinned; building it from Debian's packages" >&2
  base="$(debootstrap_base)"
fi

printf '[global]\ncert = %s\n' "$ca_bundle" > "$work/pip.conf"
echo "image: building $tag from services/Dockerfile on $base" >&2
"${podman[@]}" build \
  --format docker \
  --network host \
  --build-arg "PYTHON_IMAGE=$base" \
  --volume "$ca_bundle:$ca_bundle:ro" \
  --volume "$work/pip.conf:/etc/pip.conf:ro" \
  --file services/Dockerfile \
  --tag "$tag" \
  --quiet \
  . >/dev/null
echo "image: $tag ($("${podman[@]}" image inspect --format '{{.Id}}' "$tag" | cut -c1-12))" >&2
