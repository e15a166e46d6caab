# Sourced by the device-call scripts (cuda-device-run.sh, cuda-speed-run.sh) after they set
# `budget` (seconds) and `stages` (a comma list): the clock, stage selection, timestamps and $out.
start=$(date +%s)
out=${OUT:-/tmp/cfpipe-out}
mkdir -p "$out"
left() { echo $((budget - ($(date +%s) - start))); }
want() { [[ ",$stages," == *",$1,"* ]]; }
stamp() { echo "=== [$(( $(date +%s) - start )) s] $*"; }
# The packed Node (.devnode, see ../shared/tools/device-node.sh) first on PATH, and node_modules +
# dist unpacked from .devrun/rt.tar.xz: the GPU machine has neither.
unpack_runtime() {
  xz -dc .devnode/node.xz > /tmp/node && chmod +x /tmp/node && export PATH=/tmp:$PATH
  tar -xJf .devrun/rt.tar.xz
}
