#!/usr/bin/env bash
# Stop the SLURM daemons that start_slurm.sh started (listed in $STATE_DIR/started),
# by the pids in their pid files; daemons that were already running are left alone.
set -uo pipefail

STATE_DIR="${GLACIERMAP_SLURM_STATE:-/run/glaciermap-slurm}"
STARTED="$STATE_DIR/started"
[[ -f $STARTED ]] || exit 0

pidfile() {
  case $1 in
    munged) echo /run/munge/munged.pid ;;
    slurmctld) echo /run/slurm/slurmctld.pid ;;
    slurmd) echo /run/slurm/slurmd.pid ;;
  esac
}

# slurmd before slurmctld before munged: the reverse of the start order
for daemon in slurmd slurmctld munged; do
  grep -qx "$daemon" "$STARTED" || continue
  file=$(pidfile "$daemon")
  [[ -f $file ]] || continue
  pid=$(cat "$file")
  kill "$pid" 2>/dev/null || continue
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "stop_slurm: $daemon ($pid) ignored SIGTERM; sending SIGKILL" >&2
    kill -9 "$pid" 2>/dev/null
  fi
done
rm -f "$STARTED"
