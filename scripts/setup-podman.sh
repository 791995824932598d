#!/usr/bin/env bash
# Install podman (and debootstrap for local base images) and point it at our containers.conf.
# Idempotent: installs only what is missing. CI only (.ci/containers.sh, so `make test-containers`);
# `make images` does not run it: it changes the host (packages, a containers.conf with host networking).
# Callers set CONTAINERS_CONF=containers/containers.conf themselves (containers/build.sh, .ci/containers.sh).
set -euo pipefail
_gcmlm_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

_gcmlm_missing=()
for _gcmlm_pair in podman:podman runc:runc debootstrap:debootstrap; do
  command -v "${_gcmlm_pair%%:*}" >/dev/null 2>&1 || _gcmlm_missing+=("${_gcmlm_pair#*:}")
done
if ((${#_gcmlm_missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup-podman: missing ${_gcmlm_missing[*]}; install them (needs root): apt-get install ${_gcmlm_missing[*]}" >&2
    exit 1
  fi
  echo "setup-podman: installing ${_gcmlm_missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${_gcmlm_missing[@]}" uidmap fuse-overlayfs slirp4netns >/dev/null
fi

# Our settings apply unless the caller already chose a containers.conf.
export CONTAINERS_CONF="${CONTAINERS_CONF:-$_gcmlm_repo/containers/containers.conf}"
podman info --format '{{.Host.OCIRuntime.Name}} {{.Store.GraphDriverName}}' >/dev/null \
  || { echo "setup-podman: podman does not work here (CONTAINERS_CONF=$CONTAINERS_CONF)" >&2; exit 1; }
