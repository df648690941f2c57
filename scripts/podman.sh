#!/usr/bin/env bash
# Debian's podman, as this kind of host needs it: `bash scripts/podman.sh <podman arguments>`.
#
# What the host needs, written to a containers.conf of our own (CONTAINERS_CONF; /etc is left alone) and
# baked into no image:
#   runtime = "runc"   crun (podman's preference) fails on this kernel's cgroup v1 hierarchy;
#   default_ulimits    podman asks for nofile/nproc limits above what this host lets a container have
#                      ("error setting rlimit type 7: operation not permitted"), so they are capped at the
#                      caller's hard limits (nproc at 32768: runc is refused above that here).
# The file lives in $SPOT_PODMAN_DIR (default .spot/podman); installs podman with runc first if missing
# (scripts/install-podman.sh).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${SPOT_PODMAN_DIR:-$root/.spot/podman}"
command -v podman >/dev/null && command -v runc >/dev/null || bash "$root/scripts/install-podman.sh" >&2

cap() {  # the smaller of a hard limit ("unlimited" counts as large) and a ceiling
  local hard="$1" ceiling="$2"
  if [ "$hard" = unlimited ] || [ "$hard" -gt "$ceiling" ]; then echo "$ceiling"; else echo "$hard"; fi
}
nofile="$(cap "$(ulimit -Hn)" 65536)"
nproc="$(cap "$(ulimit -Hu)" 32768)"
mkdir -p "$dir"
conf="$dir/containers.conf"
want="[containers]
default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]

[engine]
runtime = \"runc\"
cgroup_manager = \"cgroupfs\"
events_logger = \"file\""
if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$want" ]; then
  tmp="$(mktemp "$conf.XXXXXX")"  # several podman calls may start at once
  printf '%s\n' "$want" > "$tmp" && mv "$tmp" "$conf"
fi
export CONTAINERS_CONF="$conf"
exec podman "$@"
