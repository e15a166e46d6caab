#!/bin/sh
# A real single-host Slurm for tests: a private munged, slurmctld and slurmd, all running as
# root on 127.0.0.1, configured in (and confined to) one folder.
#
#   cluster.sh up DIR     start everything; on success prints `SLURM_CONF=DIR/slurm.conf`
#   cluster.sh down DIR   stop what `up` started (by the pids it recorded) and wait for it
#
# Exit codes of `up`: 0 running; 77 Slurm cannot run here (not root, slurm-wlm or munge not
# installed and apt unusable): the reason is on stderr, and a test should skip; anything else
# is a real failure (the daemons' logs are printed). Every wait is bounded.
set -u

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: cluster.sh up|down DIR" >&2; exit 2; }

stop_pidfile() {
  [ -f "$1" ] || return 0
  pid=$(cat "$1" 2>/dev/null)
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  i=0
  while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
  kill -KILL "$pid" 2>/dev/null
  rm -f "$1"
}

if [ "$cmd" = down ]; then
  # Jobs first (slurmd's step daemons end with their jobs), then the daemons.
  stop_pidfile "$dir/slurmd.pid"
  stop_pidfile "$dir/slurmctld.pid"
  stop_pidfile "$dir/munged.pid"
  # slurmstepd processes of jobs still running under this cluster's spool dir.
  for p in $(pgrep -f "slurmstepd" 2>/dev/null); do
    grep -qs "$dir" "/proc/$p/cmdline" "/proc/$p/environ" && kill -KILL "$p" 2>/dev/null
  done
  exit 0
fi
[ "$cmd" = up ] || { echo "cluster.sh: unknown command $cmd" >&2; exit 2; }

skip() { echo "slurm unavailable: $*" >&2; exit 77; }

[ "$(id -u)" = 0 ] || skip "not root (slurmd must run as root to start jobs)"
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || skip "slurm-wlm is not installed and there is no apt-get"
  echo "installing slurm-wlm and munge with apt-get" >&2
  (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y slurm-wlm munge) >"${TMPDIR:-/tmp}/cfpipe-slurm-apt.log" 2>&1 ||
    skip "apt-get install slurm-wlm munge failed (see ${TMPDIR:-/tmp}/cfpipe-slurm-apt.log)"
  command -v slurmctld >/dev/null 2>&1 || skip "slurm-wlm installed but slurmctld is not on PATH"
fi
command -v mungekey >/dev/null 2>&1 || command -v dd >/dev/null 2>&1 || skip "no way to make a munge key"

mkdir -p "$dir" && chmod 0700 "$dir" || exit 1
mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
chmod 0700 "$dir/munge"
host=$(hostname -s 2>/dev/null || hostname)
cpus=$(nproc 2>/dev/null || echo 1)

# Two free TCP ports for slurmctld and slurmd.
ports=$(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))' 2>/dev/null) || ports="$((20000 + $$ % 20000)) $((20001 + $$ % 20000))"
ctld_port=${ports% *}
slurmd_port=${ports#* }

# A private munge: its own key, socket, pid, log and seed files.
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 2>/dev/null
chmod 0600 "$dir/munge/munge.key"
munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
  --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munge/munged.seed" ||
  { cat "$dir/munged.log" >&2 2>/dev/null; skip "munged did not start"; }

cat >"$dir/slurm.conf" <<CONF
ClusterName=cfpipetest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MinJobAge=600
KillWait=5
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=1024 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$dir/slurm.conf"

fail() {
  echo "slurm did not come up: $*" >&2
  for log in munged slurmctld slurmd; do
    [ -f "$dir/$log.log" ] && { echo "--- $log.log" >&2; tail -n 30 "$dir/$log.log" >&2; }
  done
  "$0" down "$dir"
  exit 1
}

slurmctld -i -f "$SLURM_CONF" || fail "slurmctld exited"
slurmd -N "$host" -f "$SLURM_CONF" || fail "slurmd exited"

# Wait (at most ~20 s) for the node to be idle in the default partition.
i=0
while [ $i -lt 100 ]; do
  state=$(sinfo -h -N -o '%T' 2>/dev/null | head -n 1)
  case "$state" in idle*) echo "SLURM_CONF=$SLURM_CONF"; exit 0 ;; esac
  sleep 0.2
  i=$((i+1))
done
fail "node state is '${state:-unknown}' after 20 s"
