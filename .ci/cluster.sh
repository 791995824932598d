#!/usr/bin/env bash
# CI stage for the engine tests (tests/cluster): start the one-node Slurm cluster of
# tests/cluster/slurm/ (installs slurm-wlm + munge if missing; needs root), run the tests with GCMLM_CLUSTER_TESTS=1 so
# that a missing cluster fails them instead of skipping them, then stop the cluster if this script
# started it.
# Usage: .ci/cluster.sh [pytest args]     e.g.  .ci/cluster.sh -m "not slow"
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# Toil's workers on the Slurm node run `_toil_worker`, `cwltool` and `gcmlm` from the venv.
export PATH="$repo/.venv/bin:$PATH"

started=0
if ! sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
  started=1
fi
bash tests/cluster/slurm/slurm-up.sh
if [[ $started -eq 1 ]]; then
  trap 'bash tests/cluster/slurm/slurm-down.sh' EXIT
fi
sinfo
GCMLM_CLUSTER_TESTS=1 python -m pytest tests/cluster -p no:cacheprovider --durations=0 "$@"
