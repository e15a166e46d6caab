#!/usr/bin/env bash
# Quality sweep on the GPU machine: trains the tiny base and AR teacher of the built-in domain with
# test/bench/domain_quality.js on `--device cuda`, one process per variant, all at once (the tiny
# model leaves the H200 mostly idle, so variants share it), and prints every evaluation as a
# `result {...}` line. Logs per variant go to $OUT.
#
# Prepare here as for cuda-device-run.sh (packed Node in .devnode, node_modules + dist in
# .devrun/rt.tar.xz), plus the engine sources as committed: `git archive HEAD native | xz >
# .devrun/native.tar.xz` (so someone's uncommitted kernel work does not break this build).
# Device call: carry [.devnode, .devrun],
#   command: bash test/bench/quality-sweep.sh BUDGET_S VARIANTS_FILE COMMON_ARGS...
# VARIANTS_FILE: one variant per line, `tag extra-args...`.
set -u
budget=$1; variants=$2; shift 2
stages=build
source "$(dirname "$0")/cuda-run-common.sh"
unpack_runtime
if [ -f .devrun/native.tar.xz ]; then rm -rf native && xz -dc .devrun/native.tar.xz | tar -x; fi
stamp "build"
node scripts/build-native.js > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
node -e "import('./dist/native/index.js').then(m => console.log(JSON.stringify(m.engineInfo())))"
stamp "sweep: $(grep -c . "$variants") variants, limit $(( $(left) - 15 )) s"
pids=()
while read -r tag args; do
  [ -z "$tag" ] && continue
  # shellcheck disable=SC2086
  timeout $(( $(left) - 15 )) node dist/test/bench/domain_quality.js --device cuda --work "/tmp/sweep/$tag" --tag "$tag" "$@" $args > "$out/$tag.log" 2>&1 &
  pids+=($!)
done < "$variants"
# Progress while the variants run: result lines as they land.
seen=0
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do
  sleep 10
  n=$(cat "$out"/*.log 2>/dev/null | grep -c '^result')
  if [ "$n" -gt "$seen" ]; then stamp "$n results"; seen=$n; fi
done
stamp "done"
for f in "$out"/*.log; do
  [ "$(basename "$f")" = build.log ] && continue
  echo "--- $(basename "$f" .log)"; grep -E "^(base|ar):|^result|rror" "$f" | sed 's/^result //'
done
