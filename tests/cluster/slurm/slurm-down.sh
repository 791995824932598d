#!/usr/bin/env bash
# Stop the daemons that tests/cluster/slurm/slurm-up.sh started (slurmd, slurmctld, munged), by their pid files.
set -uo pipefail
for pidfile in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
  if [[ -s $pidfile ]] && pid=$(cat "$pidfile") && kill -0 "$pid" 2>/dev/null; then
    echo "slurm-down: stopping $(basename "$pidfile" .pid) ($pid)" >&2
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  fi
done
