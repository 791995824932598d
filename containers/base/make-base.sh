#!/usr/bin/env bash
# Build the local stand-in for python:3.11-slim-bookworm from Debian packages with debootstrap and
# import it into podman, for machines that reach Debian's archive but no image registry.
#   usage: containers/base/make-base.sh IMAGE [MIRROR]
# Debian bookworm's python3 is 3.11, the Python that constraints.txt was resolved for.
set -euo pipefail
image="${1:?usage: make-base.sh IMAGE [MIRROR]}"
mirror="${2:-http://deb.debian.org/debian}"
engine="${ENGINE:-podman}"

root="$(mktemp -d "${TMPDIR:-/tmp}/gcmlm-base.XXXXXX")"
trap 'rm -rf "$root"' EXIT

# python3-dev: headers for the few sdists with C code (pyradiomics), as python:slim ships them.
debootstrap --variant=minbase \
  --include=python3,python3-venv,python3-pip,python3-dev,ca-certificates \
  bookworm "$root" "$mirror" >"$root.log" 2>&1 \
  || { tail -20 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"

# Behave like the official python image: pip installs into the system interpreter (the image is
# the environment), no apt lists or caches baked in.
rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
ln -sf python3 "$root/usr/bin/python"

# Numeric owners: the image must not depend on this host's user names.
tar --numeric-owner --sort=name -C "$root" -c . \
  | "$engine" import \
      --change 'ENV LANG=C.UTF-8' \
      --change 'CMD ["python3"]' \
      --message "debootstrap bookworm minbase + python3 (gcmlm local base)" \
      - "$image" >"$root.log" 2>&1 \
  || { cat "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
echo "$image"
