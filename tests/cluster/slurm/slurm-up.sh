#!/usr/bin/env bash
# Start a one-node Slurm cluster on this machine (munged + slurmctld + slurmd), configured from
# tests/cluster/slurm/slurm.conf.in and tests/cluster/slurm/gres.conf.in with this machine's hostname, CPUs and memory.
# Idempotent: installs slurm-wlm + munge if missing, rewrites the configs, (re)starts only what is
# not running or whose config changed, and returns once `sinfo` shows the node idle.
# Needs root (apt-get, /etc/slurm, daemons). Environment:
#   GCMLM_SLURM_STATE  state/log folder (default /var/lib/gcmlm-slurm)
#   GCMLM_SLURM_WAIT   seconds to wait for the node (default 90)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
state=${GCMLM_SLURM_STATE:-/var/lib/gcmlm-slurm}
wait_s=${GCMLM_SLURM_WAIT:-90}
log() { echo "slurm-up: $*" >&2; }

if [[ $(id -u) -ne 0 ]]; then
  log "error: must run as root (it installs packages and starts the Slurm daemons)"; exit 2
fi
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  log "installing slurm-wlm and munge from the distribution"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

# The machine's real resources; slurmd marks the node invalid if we declare more than it finds.
host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)

mkdir -p "$state"/{slurmctld,slurmd,log} /etc/slurm
changed=0
render() {  # render TEMPLATE DEST; sets changed=1 when DEST's content changes
  local tmp
  tmp=$(mktemp)
  sed -e "s|@HOST@|$host|g" -e "s|@CPUS@|$cpus|g" -e "s|@MEM_MB@|$mem_mb|g" -e "s|@STATE@|$state|g" \
    "$1" >"$tmp"
  if ! cmp -s "$tmp" "$2"; then
    install -m 0644 "$tmp" "$2"; changed=1
  fi
  rm -f "$tmp"
}
render "$here/slurm.conf.in" /etc/slurm/slurm.conf
render "$here/gres.conf.in" /etc/slurm/gres.conf

alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# munge: the authentication every Slurm call goes through.
mkdir -p /run/munge && chown munge:munge /run/munge && chmod 0755 /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
  log "creating the munge key"
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
  chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
fi
if ! alive /run/munge/munged.pid; then
  log "starting munged"
  runuser -u munge -- /usr/sbin/munged
fi
for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
munge -n | unmunge >/dev/null  # fails loudly if munged never answered

if [[ $changed -eq 1 ]]; then
  for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
    if alive "$pidfile"; then
      log "config changed: stopping $(basename "$pidfile" .pid)"
      pid=$(cat "$pidfile"); kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    fi
  done
fi
if ! alive /run/slurmctld.pid; then log "starting slurmctld"; /usr/sbin/slurmctld; fi
if ! alive /run/slurmd.pid; then log "starting slurmd"; /usr/sbin/slurmd; fi

deadline=$((SECONDS + wait_s))
while :; do
  node_state=$(sinfo -h -N -n "$host" -o %T 2>/dev/null | head -1 || true)
  case $node_state in
    idle|mixed|allocated) break ;;
    down*|drain*|drained*|inval*)
      # A node left down by an earlier run (or marked down at first contact): put it back.
      scontrol update nodename="$host" state=resume 2>/dev/null || true ;;
  esac
  if ((SECONDS >= deadline)); then
    log "error: node $host is '${node_state:-unknown}' after ${wait_s}s; see $state/log/"
    tail -n 20 "$state/log/slurmctld.log" "$state/log/slurmd.log" >&2 || true
    exit 1
  fi
  sleep 1
done
log "cluster up: node $host ($cpus CPUs, $mem_mb MB, gres gpu:1 placeholder) is $node_state"
