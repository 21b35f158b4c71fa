#!/usr/bin/env bash
# Install (if missing) and start a one-node SLURM cluster on this machine, as root.
#
#   tests/cluster/start_slurm.sh            # install, configure, start, wait for the node
#   tests/cluster/stop_slurm.sh             # stop only the daemons this script started
#
# Debian 12's slurmctld/slurmd/slurm-client/munge (SLURM 22.05), no systemd, no
# cgroups, no accounting database (comments in the slurm.conf written below say
# why a setting is there). The node declares one GPU as a generic resource without a
# device file, so that `--gpus=1` requests are scheduled as on a GPU node; the
# jobs themselves run on the CPU.
#
# Exit status: 0 cluster up; 3 the daemons cannot be installed here (callers skip);
# anything else is a failure. The daemons this run started are listed, one name
# per line, in $STATE_DIR/started, for stop_slurm.sh (give each caller its own
# GLACIERMAP_SLURM_STATE so that one never stops another's daemons).
set -euo pipefail

PARTITION="${GLACIERMAP_SLURM_PARTITION:-main}"
STATE_DIR="${GLACIERMAP_SLURM_STATE:-/run/glaciermap-slurm}"
CONF=/etc/slurm/slurm.conf
MARKER="# written by glaciermap tests/cluster/start_slurm.sh"

log() { echo "start_slurm: $*" >&2; }

if [[ $(id -u) -ne 0 ]]; then
  log "needs root (to install packages and start the daemons)"
  exit 3
fi

install_packages() {
  local missing=()
  for bin in /usr/sbin/slurmctld /usr/sbin/slurmd /usr/bin/sbatch /usr/sbin/munged; do
    [[ -x $bin ]] || missing+=("$bin")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  log "installing slurmctld slurmd slurm-client munge (missing: ${missing[*]})"
  if ! command -v apt-get >/dev/null; then
    log "no apt-get on this machine: cannot install SLURM"
    exit 3
  fi
  if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      slurmctld slurmd slurm-client munge; } >"$STATE_DIR/apt.log" 2>&1; then
    log "apt-get could not install SLURM (log: $STATE_DIR/apt.log):"
    tail -n 5 "$STATE_DIR/apt.log" >&2
    exit 3
  fi
}

write_config() {
  if [[ -e $CONF ]] && ! grep -qF "$MARKER" "$CONF"; then
    log "$CONF exists and was not written by this script; refusing to overwrite it"
    exit 1
  fi
  local host cpus mem
  host=$(hostname)
  # slurmd -C prints this node's real line: CPUs=.. RealMemory=..
  cpus=$(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' | head -n1)
  mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -n1)
  mem=$((mem * 9 / 10))
  getent hosts "$host" >/dev/null || { log "hostname $host does not resolve"; exit 1; }
  cat >"$CONF.new" <<EOF
$MARKER
ClusterName=glaciermap-test
SlurmctldHost=$host
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
# no cgroups on these machines
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# no accounting database: finished jobs go to a text file (sacct -c)
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
# the executor plugin polls squeue: keep finished jobs visible for 5 minutes
MinJobAge=300
# a job killed at its time limit is killed at once, not after 30 s
KillWait=5
OverTimeLimit=0
GresTypes=gpu
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  # one GPU without a device file: scheduled like a GPU, nothing is bound
  cat >"$CONF.gres.new" <<EOF
$MARKER
NodeName=$host Name=gpu File=/dev/null Count=1
EOF
  # daemons that are already running re-read a changed configuration (below)
  if ! cmp -s "$CONF.new" "$CONF" || ! cmp -s "$CONF.gres.new" /etc/slurm/gres.conf; then
    CONFIG_CHANGED=1
  fi
  mv "$CONF.new" "$CONF"
  mv "$CONF.gres.new" /etc/slurm/gres.conf
}

alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_daemons() {
  install -d -o munge -g munge /run/munge /var/log/munge /var/lib/munge
  install -d -o slurm -g slurm /var/spool/slurmctld /var/log/slurm /run/slurm
  install -d /var/spool/slurmd
  [[ -f /etc/munge/munge.key ]] || { mungekey --create && chown munge:munge /etc/munge/munge.key; }
  if ! alive /run/munge/munged.pid; then
    su -s /bin/sh munge -c /usr/sbin/munged
    echo munged >>"$STATE_DIR/started"
  fi
  munge -n | unmunge >/dev/null || { log "munge does not work"; exit 1; }
  if ! alive /run/slurm/slurmctld.pid; then
    /usr/sbin/slurmctld
    echo slurmctld >>"$STATE_DIR/started"
  fi
  if ! alive /run/slurm/slurmd.pid; then
    /usr/sbin/slurmd
    echo slurmd >>"$STATE_DIR/started"
  fi
}

wait_for_node() {
  local state=""
  for _ in $(seq 1 60); do
    state=$(sinfo -h -N -o '%T' 2>/dev/null | head -n1 || true)
    case $state in
      idle | mixed | allocated) log "node is $state"; return 0 ;;
      down* | drain*) scontrol update NodeName="$(hostname)" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 1
  done
  log "node did not become idle (state: '${state}'); see /var/log/slurm/"
  tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
  exit 1
}

CONFIG_CHANGED=0
mkdir -p "$STATE_DIR"
: >"$STATE_DIR/started"
install_packages
write_config
start_daemons
if [[ $CONFIG_CHANGED == 1 ]] && ! grep -qx slurmctld "$STATE_DIR/started"; then
  log "configuration changed: scontrol reconfigure"
  scontrol reconfigure
fi
wait_for_node
