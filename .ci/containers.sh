#!/usr/bin/env bash
# The container half of CI (and `make test-containers`): set up podman, build the stage images,
# run every tool's CWL tests inside its image plus the image tests (tests/containers), then the
# whole demo workflow once with every step in its container. Needs .venv (make setup).
#
#   .ci/containers.sh                                          all stages, all tests, the demo workflow
#   GCMLM_CI_STAGES="slide-pool wsi-tile" .ci/containers.sh    build and test a subset
#   GCMLM_CI_DEMO=0 .ci/containers.sh                          skip the demo workflow
#
# Base images are built here (debootstrap + PyPI's torch wheels) when no image registry answers.
# GCMLM_WHEELS: a local wheel folder pip may use (default: the machine's /opt/pypi-more/files).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
start=$SECONDS
stamp() { echo "ci containers: $1 at $((SECONDS - start)) s"; }

# The CI machine's podman setup (installs podman, runc, debootstrap; our containers.conf with host
# networking): here only, never in `make images`, which uses whatever engine the user has.
bash scripts/setup-podman.sh
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/containers/containers.conf}"
# No bridge networking in the sandbox: builds share the host's network and CA store.
export GCMLM_ENGINE_ARGS="${GCMLM_ENGINE_ARGS:---network host --volume /etc/ssl/certs:/etc/ssl/certs:ro}"
if [[ -z ${GCMLM_WHEELS:-} && -d /opt/pypi-more/files ]]; then export GCMLM_WHEELS=/opt/pypi-more/files; fi
export PATH="$PWD/.venv/bin:$PATH"
# A test whose image is missing fails instead of skipping.
export GCMLM_REQUIRE_IMAGES=1
# The export round trip on a small image (slide-pool's 6.6 GB archive takes 6 min here).
export GCMLM_EXPORT_STAGE="${GCMLM_EXPORT_STAGE:-demo-cohort}"
df -h / | tail -1

read -r -a stages <<<"${GCMLM_CI_STAGES:-}"
bash containers/build.sh "${stages[@]}"
stamp "images built"

tool_dirs=(tools)
if ((${#stages[@]})); then
  tool_dirs=()
  for s in "${stages[@]}"; do tool_dirs+=("tools/$s"); done
fi
status=0
python -m pytest "${tool_dirs[@]}" tests/containers -p no:cacheprovider \
  --cwl-runner cwltool --cwl-args="--user-space-docker-cmd podman" || status=$?
stamp "CWL tests in containers and image tests done (exit $status)"

if [[ ${GCMLM_CI_DEMO:-1} == 1 && ${#stages[@]} -eq 0 ]]; then
  demo_out="$(mktemp -d "${TMPDIR:-/tmp}/gcmlm-demo-containers.XXXXXX")"
  # Small training budget: this run proves the containers, `make demo` the science. A 2-epoch model
  # finds the stomach (label 1) but not reliably the tumour (label 2), so radiomics takes label 1.
  CWL_ARGS="--user-space-docker-cmd podman" DEMO_PATIENTS="${DEMO_PATIENTS:-24}" DEMO_SET="radiomics_label=1" \
    DEMO_EPOCHS="${DEMO_EPOCHS:-2}" DEMO_ITERATIONS="${DEMO_ITERATIONS:-5}" \
    DEMO_OUTER_REPEATS="${DEMO_OUTER_REPEATS:-1}" \
    bash scripts/demo.sh "$demo_out" || status=$?
  rm -rf "$demo_out"
  stamp "demo workflow in containers done (exit $status)"
fi
exit "$status"
