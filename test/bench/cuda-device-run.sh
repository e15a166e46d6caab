#!/usr/bin/env bash
# One call on the GPU machine (it has no Node and no network): unpack the packed Node and the
# runtime bundle, build the engine the way users do (scripts/build-native.js: both addons and the
# C++ tests), run the CUDA tests (parity, GPU training vs CPU, exact GPU resume), the Node device
# test against the CUDA addon, then `cfpipe run pipelines/framewise.cf --device cuda` through the
# real CLI (test/bench/pipeline_wall.js: wall time per stage and the eval metrics), and, with the
# time left, the GPU benchmark. Logs go to $OUT.
#
# Prepare here (x86-64, from the repo root):
#   ../shared/tools/device-node.sh node_modules/.bin/node && npx tsc -p . &&
#   mkdir -p .devrun && tar -cf - --exclude=node_modules/node --exclude=node_modules/typescript \
#     --exclude=node_modules/@typescript --exclude=node_modules/@types node_modules dist | xz -T2 > .devrun/rt.tar.xz
# Device call: carry [.devnode, .devrun], command: bash test/bench/cuda-device-run.sh [budget_s=560] [stages]
#   PIPELINE_ARGS='--params configs/presets/gpu.yaml' selects the GPU preset for the pipeline stage,
#   PIPELINE_FILE another pipeline (default pipelines/framewise.cf).
#   stages: a comma list of build,ctest,node,probe,pipeline,bench (default: all)
set -u
budget=${1:-560}
stages=${2:-build,ctest,node,probe,pipeline,bench}
source "$(dirname "$0")/cuda-run-common.sh"

unpack_runtime
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader
stamp "node $(node --version), nproc $(nproc)"

if want build; then
  stamp build
  if ! node scripts/build-native.js > "$out/build.log" 2>&1; then
    # A file of someone else's work in progress may not compile with this machine's compiler:
    # then build only the targets this run needs, in the same build tree.
    grep -m3 -E "error" "$out/build.log"
    stamp "full build failed; building the needed targets only"
    cmake --build native/build --config Release -j "$(nproc)" --target cfpipe_native cfpipe_cuda_addon test_cuda_parity test_cuda_train cuda_bench \
      > "$out/build2.log" 2>&1 || { tail -30 "$out/build2.log"; exit 1; }
  fi
  grep -E "build:native|cuBLASLt|cfpipe:" "$out/build.log"
fi
if want ctest; then
  stamp "ctest (CUDA tests)"
  ctest --test-dir native/build -R "test_cuda_(parity|train)" --output-on-failure --timeout 300 2>&1 | tee "$out/ctest.log" | grep -vE "^\s*$" | tail -60
  ./native/build/test_cuda_train > "$out/test_cuda_train.log" 2>&1
fi
if want node; then
  stamp "node device test + engineInfo"
  node -e "import('./dist/native/index.js').then(m => console.log(JSON.stringify(m.engineInfo())))"
  # The GPU-vs-CPU loss check of this test is an fp32 parity check (1e-3); the bf16 default has its
  # own rule in native/tests/test_cuda_train.cpp.
  CFPIPE_CUDA_PRECISION=fp32 node scripts/test.js test/native/device 2>&1 | grep -E "^(✔|✖)|tests|pass|fail" | head -12
fi
if want probe; then
  stamp "sampling modes, CPU vs GPU"
  CFPIPE_CUDA_PRECISION=fp32 timeout 150 node dist/test/bench/cuda-sample-probe.js 60 2>&1 | tee "$out/probe.log"
fi
if want pipeline && [ "$(left)" -gt 90 ]; then
  limit=$(( $(left) - ${PIPELINE_RESERVE:-60} ))
  stamp "$(basename "${PIPELINE_FILE:-framewise.cf}") --device cuda (limit $limit s)"
  rm -rf /tmp/cfpipe-gpu-project
  # PIPELINE_NODE_OPTIONS=--jitless works around Node's exit-time deadlock (nodejs/node#54918:
  # process.exit joins a V8 worker parked in a concurrent compile job), seen here as a worker that
  # finished its GPU task and never exited.
  # shellcheck disable=SC2086
  NODE_OPTIONS="${PIPELINE_NODE_OPTIONS:-}" node dist/test/bench/pipeline_wall.js ${PIPELINE_FILE:-pipelines/framewise.cf} --device cuda ${PIPELINE_ARGS:-} --keep /tmp/cfpipe-gpu-project > "$out/pipeline.log" 2>&1 &
  pid=$!
  t0=$(date +%s)
  while kill -0 $pid 2>/dev/null && [ $(( $(date +%s) - t0 )) -lt $limit ]; do sleep 2; done
  if kill -0 $pid 2>/dev/null; then
    stamp "pipeline still running at the limit: state of its processes and task logs"
    ps -eo pid,ppid,stat,wchan:28,etime,pcpu,args --sort=pid | grep -E "[n]ode|[c]fpipe" | cut -c1-220
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
    nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader
    find /tmp/cfpipe-gpu-project/.cfpipe -name '*.log' -mmin -3 2>/dev/null | head -8 | while read -r f; do echo "--- $f"; tail -n 8 "$f"; done
    kill -TERM $pid; sleep 3; pkill -TERM -P $pid 2>/dev/null
  fi
  cat "$out/pipeline.log" | tail -40
  # The published videos (GIFs named after their prompts) and the report, to look at.
  tar -C /tmp/cfpipe-gpu-project -cf "$out/published.tar" videos reports 2>/dev/null
fi
if want bench && [ "$(left)" -gt 120 ]; then
  stamp "GPU benchmark"
  timeout $(( $(left) - 20 )) ./native/build/cuda_bench 2>&1 | tee "$out/bench.log" | tail -30
fi
stamp done
