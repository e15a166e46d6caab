# Sourced by the device-call scripts (cuda-device-run.sh, cuda-speed-run.sh) after they set
# `budget` (seconds) and `stages` (a comma list): the clock, stage selection, timestamps and $out.
start=$(date +%s)
out=${OUT:-/tmp/cfpipe-out}
mkdir -p "$out"
left() { echo $((budget - ($(date +%s) - start))); }
want() { [[ ",$stages," == *",$1,"* ]]; }
stamp() { echo "=== [$(( $(date +%s) - start )) s] $*"; }
