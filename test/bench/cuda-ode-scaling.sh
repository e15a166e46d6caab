#!/usr/bin/env bash
# Throughput of the sharded `ode_pairs` stage on one GPU against two, through the real CLI, on a
# machine with two GPUs (the device kind nvidia-h200-x2). Both runs are `cfpipe run
# pipelines/framewise.cf ode_db --device cuda` from a clean store with the same small teacher
# (base and AR teacher a few hundred steps: the teacher's quality does not change the work), once
# with CUDA_VISIBLE_DEVICES=0 and once with 0,1; it prints when each ode shard ran and on which
# GPUs, and clips per second over the span of the ode shards.
# Prepare as for cuda-device-run.sh; device call: carry [.devnode, .devrun],
#   command: bash test/bench/cuda-ode-scaling.sh [clips=512]
set -u
clips=${1:-512}
budget=590; stages=build
source "$(dirname "$0")/cuda-run-common.sh"
# SKIP_BUILD=1 (a machine that already has Node, dist/ and the addons) skips unpacking and building.
if [ -z "${SKIP_BUILD:-}" ]; then
  unpack_runtime
fi
nvidia-smi -L 2>/dev/null
repo=$(pwd)
stamp build
[ -n "${SKIP_BUILD:-}" ] || node scripts/build-native.js > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
for visible in 0 0,1; do
  stamp "CUDA_VISIBLE_DEVICES=$visible"
  project=/tmp/ode-scaling-${visible/,/-}
  rm -rf "$project"; mkdir -p "$project"; cp -r pipelines configs "$project/"
  ( cd "$project" && CUDA_VISIBLE_DEVICES=$visible node "$repo/bin/cfpipe.js" run pipelines/framewise.cf ode_db --device ${DEVICE:-cuda} --json \
      --set clips=$clips --set base_steps=300 --set ar_steps=300 > "$out/run-${visible/,/-}.jsonl" 2> "$out/run-${visible/,/-}.err" )
  echo "exit $?"
  node -e '
    const fs = require("fs");
    const ev = fs.readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean).map((l) => { try { return JSON.parse(l); } catch { return null; } }).filter(Boolean);
    const start = new Map(); const rows = [];
    for (const e of ev) {
      if (e.type === "task-started") start.set(e.id, e);
      if (e.type === "task-finished" && e.id.startsWith("ode[")) rows.push({ id: e.id, t0: start.get(e.id).time, t1: e.time, where: `${start.get(e.id).device} GPUs ${JSON.stringify(start.get(e.id).gpus ?? [])}` });
    }
    const t0 = Math.min(...rows.map((r) => r.t0)), t1 = Math.max(...rows.map((r) => r.t1));
    for (const r of rows) console.log(`${r.id}  start ${((r.t0 - t0) / 1000).toFixed(1)} s  wall ${((r.t1 - r.t0) / 1000).toFixed(1)} s  ${r.where}`);
    const clips = Number(process.argv[2]);
    console.log(`ode span ${((t1 - t0) / 1000).toFixed(1)} s: ${(clips / ((t1 - t0) / 1000)).toFixed(2)} clips/s`);
  ' "$out/run-${visible/,/-}.jsonl" "$clips"
  grep -m3 -iE "error|failed" "$out/run-${visible/,/-}.err"
done
stamp done
