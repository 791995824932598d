#!/usr/bin/env bash
# Build the gcmlm images: one per stage, ghcr.io/gcmlm/<stage>:<version>, as every tool's
# DockerRequirement names them, on one shared runtime per branch (pip extra).
#
#   containers/build.sh              every stage in src/gcmlm/stages.py
#   containers/build.sh STAGE...     only these stages (and the runtimes they need)
#
# Layers:  base (python slim | CUDA PyTorch)  ->  runtime-<extra>  ->  <stage>
# The engine's layer cache rebuilds only what changed: a code change rebuilds the small gcmlm
# layer of each runtime and the stage layers; pyproject.toml/constraints.txt rebuild dependencies.
#
# Environment:
#   ENGINE=podman|docker   default: podman if it works, else docker (with a running daemon)
#   BASE_CPU, BASE_GPU     base images for the CPU extras (demo, report) and the PyTorch extras
#                          (radiology, pathology, fusion); defaults below
#   GCMLM_LOCAL_BASE=1     build the bases here instead (debootstrap + PyPI's torch wheels); also
#                          chosen when the default bases are absent and no registry answers
#   GCMLM_WHEELS=DIR       a local wheel folder pip may take wheels from (podman only)
#   GCMLM_ENGINE_ARGS      extra build arguments (CI: --network host and the host's CA store)
#   CONTAINERS_CONF        podman's configuration; unset: the user's own (CI sets containers/containers.conf)
#   REGISTRY=ghcr.io/gcmlm image name prefix
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
py="$repo/.venv/bin/python"
[[ -x $py ]] || py=python3

registry="${REGISTRY:-ghcr.io/gcmlm}"
# The package's version (gcmlm.__version__, what `gcmlm --version` prints) is every image's tag.
version="$(PYTHONPATH=src "$py" -c 'import gcmlm; print(gcmlm.__version__)')"
pin() { sed -n "s/^$1==//p" constraints.txt; }
torch_version="$(pin torch)"
torchvision_version="$(pin torchvision)"
# The CUDA of PyPI's torch wheels (constraints.txt pins nvidia-*-cu13).
cuda_tag="cuda13.0"
default_base_cpu="python:3.11-slim-bookworm"
default_base_gpu="pytorch/pytorch:${torch_version}-${cuda_tag}-cudnn9-runtime"
local_base_cpu="localhost/gcmlm/base-python:3.11-bookworm"
local_base_gpu="localhost/gcmlm/base-torch:${torch_version}"
# Extras built on the PyTorch base: the GPU branches, and fusion (fusion-train trains the MIL
# network of path_mil; the other fusion stages share its runtime and never import torch).
gpu_extras=" radiology pathology fusion "

log() { printf '[build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'containers/build.sh: error: %s\n' "$*" >&2; exit 1; }

# --- engine -------------------------------------------------------------------------------------
# The user's own podman or docker, with the user's own configuration (rootless podman included):
# nothing here changes the host. CI's sandbox settings (containers/containers.conf, host network,
# the host's CA store) come from .ci/containers.sh through CONTAINERS_CONF and GCMLM_ENGINE_ARGS.
engine_args=()
engine_problem() {  # why neither engine works, exactly
  local why=()
  if command -v podman >/dev/null; then
    why+=("podman is installed but \`podman info\` fails: $(podman info 2>&1 | tail -1)")
  else
    why+=("podman is not installed")
  fi
  if ! command -v docker >/dev/null; then
    why+=("docker is not installed")
  elif ! docker info >/dev/null 2>&1; then
    why+=("docker is installed but its daemon does not answer (is it running, and may $(id -un) use it?)")
  fi
  printf '%s; ' "${why[@]}"
}
pick_engine() {
  if [[ -z ${ENGINE:-} ]]; then
    if command -v podman >/dev/null && podman info >/dev/null 2>&1; then
      ENGINE=podman
    elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
      ENGINE=docker
    else
      die "no container engine works: $(engine_problem)install podman (rootless is fine) or docker, or set ENGINE"
    fi
  fi
  # docker format under podman: the OCI config has no SHELL, and the Dockerfiles rely on bash -o pipefail.
  [[ $ENGINE != podman ]] || engine_args+=(--format docker)
  read -r -a extra_args <<<"${GCMLM_ENGINE_ARGS:-}"
  engine_args+=("${extra_args[@]}")
  if [[ -n ${GCMLM_WHEELS:-} ]]; then
    [[ $ENGINE == podman ]] || die "GCMLM_WHEELS needs podman (build-time volumes)"
    [[ -d $GCMLM_WHEELS ]] || die "GCMLM_WHEELS=$GCMLM_WHEELS is not a folder"
    engine_args+=(--volume "$GCMLM_WHEELS:/wheels:ro" --build-arg PIP_FIND_LINKS=/wheels)
  fi
  log "engine: $ENGINE ($($ENGINE --version))"
}

image_exists() { "$ENGINE" image inspect "$1" >/dev/null 2>&1; }

registry_reachable() {
  command -v curl >/dev/null || return 1
  # Any HTTP answer (401 included) means the registry is there.
  curl -s -o /dev/null --max-time 8 https://registry-1.docker.io/v2/
}

build() {  # build TAG DOCKERFILE CONTEXT [ARGS...]
  local tag=$1 file=$2 context=$3; shift 3
  local t0=$SECONDS
  "$ENGINE" build --tag "$tag" --file "$file" "${engine_args[@]}" "$@" "$context" \
    >"$workdir/build.log" 2>&1 || { tail -40 "$workdir/build.log" >&2; die "building $tag failed"; }
  log "built $tag in $((SECONDS - t0)) s"
}

# --- bases --------------------------------------------------------------------------------------
choose_bases() {
  base_cpu="${BASE_CPU:-$default_base_cpu}"
  base_gpu="${BASE_GPU:-$default_base_gpu}"
  local local_base="${GCMLM_LOCAL_BASE:-}"
  if [[ -z $local_base && -z ${BASE_CPU:-}${BASE_GPU:-} ]]; then
    if image_exists "$base_cpu" && { ! $need_gpu || image_exists "$base_gpu"; }; then
      local_base=0
    elif registry_reachable; then
      local_base=0
    else
      log "no image registry answers: building the bases here (GCMLM_LOCAL_BASE=1)"
      local_base=1
    fi
  fi
  if [[ $local_base == 1 ]]; then
    base_cpu="$local_base_cpu"
    base_gpu="$local_base_gpu"
    if ! image_exists "$base_cpu"; then
      local t0=$SECONDS
      log "debootstrap bookworm -> $base_cpu"
      ENGINE=$ENGINE bash containers/base/make-base.sh "$base_cpu" >/dev/null
      log "built $base_cpu in $((SECONDS - t0)) s"
    fi
    if $need_gpu && ! image_exists "$base_gpu"; then
      build "$base_gpu" containers/torch/Dockerfile "$workdir/empty" \
        --build-arg BASE="$base_cpu" \
        --build-arg TORCH_VERSION="$torch_version" \
        --build-arg TORCHVISION_VERSION="$torchvision_version"
    fi
  fi
  log "bases: cpu=$base_cpu gpu=$base_gpu"
}

# --- build context: the gcmlm wheel, constraints, one requirements file per extra --------------
make_context() {
  local ctx=$workdir/context src=$workdir/src
  mkdir -p "$ctx" "$src"
  cp constraints.txt "$ctx/"
  # The wheel is built from the files git would commit (tracked + untracked, not ignored), in a
  # copy, so stale build/ folders never leak into it; a fixed timestamp keeps an unchanged source
  # an unchanged wheel, and so a cached layer.
  git ls-files -z --cached --others --exclude-standard | \
    while IFS= read -r -d '' f; do if [[ -e $f ]]; then printf '%s\0' "$f"; fi; done | \
    tar --null -T - -c | tar -x -C "$src"
  SOURCE_DATE_EPOCH="$(git log -1 --format=%ct 2>/dev/null || echo 315532800)" \
    "$py" -m pip wheel --quiet --no-deps --no-build-isolation -w "$ctx" "$src" >/dev/null
  "$py" - "$ctx" <<'EOF'
import sys, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
for extra, deps in project["optional-dependencies"].items():
    with open(f"{sys.argv[1]}/requirements-{extra}.txt", "w") as out:
        out.write("\n".join(project["dependencies"] + deps) + "\n")
EOF
}

revision() {
  local rev
  rev="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
  [[ -z $(git status --porcelain 2>/dev/null) ]] || rev="$rev-dirty"
  echo "$rev"
}

# --- main ---------------------------------------------------------------------------------------
mapfile -t stage_rows < <(PYTHONPATH=src "$py" -c '
from gcmlm.stages import STAGES
for s in STAGES: print(s.name, s.branch, s.summary, sep="\t")')
declare -A branch_of summary_of
for row in "${stage_rows[@]}"; do
  IFS=$'\t' read -r name branch summary <<<"$row"
  branch_of[$name]=$branch; summary_of[$name]=$summary
done
if (($#)); then wanted=("$@"); else wanted=(); for row in "${stage_rows[@]}"; do wanted+=("${row%%$'\t'*}"); done; fi
extras=()
need_gpu=false
for stage in "${wanted[@]}"; do
  [[ -n ${branch_of[$stage]:-} ]] || die "unknown stage '$stage' (see src/gcmlm/stages.py)"
  extra=${branch_of[$stage]}
  [[ " ${extras[*]} " == *" $extra "* ]] || extras+=("$extra")
  [[ $gpu_extras != *" $extra "* ]] || need_gpu=true
done

workdir="$(mktemp -d "${TMPDIR:-/tmp}/gcmlm-images.XXXXXX")"
trap 'rm -rf "$workdir"' EXIT
mkdir "$workdir/empty"  # the context of images that copy nothing
t_start=$SECONDS
pick_engine
choose_bases
make_context
rev="$(revision)"

for extra in "${extras[@]}"; do
  base=$base_cpu
  [[ $gpu_extras != *" $extra "* ]] || base=$base_gpu
  build "$registry/runtime-$extra:$version" containers/runtime/Dockerfile "$workdir/context" \
    --build-arg BASE="$base" --build-arg EXTRA="$extra"
done
for stage in "${wanted[@]}"; do
  build "$registry/$stage:$version" containers/stage/Dockerfile "$workdir/empty" \
    --build-arg RUNTIME="$registry/runtime-${branch_of[$stage]}:$version" \
    --build-arg STAGE="$stage" --build-arg SUMMARY="${summary_of[$stage]}" \
    --build-arg VERSION="$version" --build-arg REVISION="$rev"
done

# Our images replaced by this build are no longer tagged: drop them (only ours: dangling images whose
# title label is gcmlm-*), so the disk does not fill up and nobody else's images are touched.
mapfile -t stale < <("$ENGINE" images --filter dangling=true --format '{{.ID}} {{index .Labels "org.opencontainers.image.title"}}' \
  | awk '$2 ~ /^gcmlm-/ {print $1}' | sort -u)
if ((${#stale[@]})); then "$ENGINE" rmi "${stale[@]}" >/dev/null 2>&1 || log "could not remove ${#stale[@]} stale image(s)"; fi
log "done: ${#wanted[@]} stage image(s) in $((SECONDS - t_start)) s"
