#!/usr/bin/env bash
# Stop the SLURM daemons that start_slurm.sh started (listed in $STATE_DIR/started),
# by the pids in their pid files; daemons that were already running are left alone.
# When it stops the controller it also removes the slurm.conf and gres.conf that
# start_slurm.sh wrote (the next start writes them again).
set -uo pipefail

STATE_DIR="${GLACIERMAP_SLURM_STATE:-/run/glaciermap-slurm}"
MARKER="# written by glaciermap tests/cluster/start_slurm.sh"
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
# With the controller gone, our slurm.conf only slows things down: every SLURM
# client (and Snakemake's SLURM plugin at start-up, via scontrol) waits ~9 s for
# a controller that is not there; without the file they fail at once.
if grep -qx slurmctld "$STARTED"; then
  for conf in /etc/slurm/slurm.conf /etc/slurm/gres.conf; do
    if grep -qF "$MARKER" "$conf" 2>/dev/null; then rm -f "$conf"; fi
  done
fi
rm -f "$STARTED"
