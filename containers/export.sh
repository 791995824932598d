#!/usr/bin/env bash
# Save built stage images as archives for machines without a registry (HPC clusters with
# Apptainer/Singularity, air-gapped hosts), with a manifest of what is inside.
#
#   containers/export.sh [--out DIR] [--format docker-archive|oci-archive] [STAGE...]
#
# Writes DIR/<stage>-<version>.tar (one image each, its name and tag kept inside) and
# DIR/MANIFEST.tsv: archive, image, image id, archive sha256, bytes, and the .sif file name that
# `cwltool --singularity` looks for. Load them with:
#   podman load -i DIR/slide-pool-0.1.0.tar        (or docker load; then cwltool finds the tag)
#   apptainer build DIR/<sif name> docker-archive://DIR/slide-pool-0.1.0.tar
# Stage images of one branch share their layers; every archive holds them all, so export only
# the stages a site runs.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="$repo/.venv/bin/python"
[[ -x $py ]] || py=python3
registry="${REGISTRY:-ghcr.io/gcmlm}"
out="images"
format="docker-archive"
stages=()
while (($#)); do
  case $1 in
    --out) out=$2; shift 2 ;;
    --format) format=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    -*) echo "containers/export.sh: error: unknown option $1" >&2; exit 2 ;;
    *) stages+=("$1"); shift ;;
  esac
done
[[ $format == docker-archive || $format == oci-archive ]] \
  || { echo "containers/export.sh: error: --format must be docker-archive or oci-archive" >&2; exit 2; }

version="$(PYTHONPATH="$repo/src" "$py" -c 'import gcmlm; print(gcmlm.__version__)')"
if ((${#stages[@]} == 0)); then
  mapfile -t stages < <(PYTHONPATH="$repo/src" "$py" -c '
from gcmlm.stages import STAGES
for s in STAGES: print(s.name)')
fi
if [[ -z ${ENGINE:-} ]]; then
  if command -v podman >/dev/null; then ENGINE=podman; else ENGINE=docker; fi
fi

# cwltool --singularity looks for this file name in CWL_SINGULARITY_CACHE (cwl-utils' escaping:
# "_" -> "___", "/" -> "_s_").
sif_name() { local n=${1//_/___}; echo "${n//\//_s_}.sif"; }

mkdir -p "$out"
manifest="$out/MANIFEST.tsv"
tmp_manifest="$(mktemp "$out/.MANIFEST.XXXXXX")"
trap 'rm -f "$tmp_manifest" "$out"/.*.tar.part' EXIT
printf 'archive\timage\timage_id\tsha256\tbytes\tsif\n' >"$tmp_manifest"
for stage in "${stages[@]}"; do
  image="$registry/$stage:$version"
  "$ENGINE" image inspect "$image" >/dev/null 2>&1 \
    || { echo "containers/export.sh: error: $image is not built (containers/build.sh $stage)" >&2; exit 1; }
  archive="$stage-$version.tar"
  # Written under a temporary name, renamed when complete: no half-written archive is left.
  part="$out/.$archive.part"
  rm -f "$part"
  if [[ $ENGINE == podman ]]; then
    podman save --quiet --format "$format" -o "$part" "$image"
  else
    docker save -o "$part" "$image"
  fi
  mv "$part" "$out/$archive"
  id="$("$ENGINE" image inspect --format '{{.Id}}' "$image")"
  read -r sum _ < <(sha256sum "$out/$archive")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$archive" "$image" "$id" "$sum" \
    "$(stat -c %s "$out/$archive")" "$(sif_name "$image")" >>"$tmp_manifest"
  echo "$out/$archive" >&2
done
chmod 644 "$tmp_manifest"
mv "$tmp_manifest" "$manifest"
echo "$manifest"
