#!/usr/bin/env bash
# One device call for the GPU speed work (no Node needed): build the CUDA targets with plain CMake,
# run the CUDA parity tests in bf16 and fp32 mode, the GPU benchmark in both modes (per-op profile,
# GEMM table against bare cuBLASLt, copy bandwidth), the bf16 training/resume test, and PyTorch at
# the same shapes (eager and torch.compile, fp32 and bf16 autocast) with the time left, or the
# cached PyTorch figures of test/bench/cuda-bench-torch.json when it exists (TORCH_MEASURE=
# "fp32:compile,..." re-measures those combos and merges them into $OUT/torch.json).
# Logs go to $OUT (at most 8 files come back).
#
# Device call: command: bash test/bench/cuda-speed-run.sh [budget_s=570] [stages]
#   stages: comma list (default: build,parity,bench,train,torch)
#     build     CMake build of the CUDA targets (registers/spills of the attention kernels printed)
#     parity    test_cuda_parity bf16 then fp32;  parity16: bf16 only
#     variant   test_cuda_parity bf16 attention section + bf16 profile with the other attention
#               tile shapes (CFPIPE_ATTN_FWD_MT=1 CFPIPE_ATTN_DKV_Q=32)
#     bench     cuda_bench bf16 --gemm, fp32 --profile, bf16 with cuBLASLt fast mode;  bench16: bf16 --gemm only
#     ab        cuda_bench bf16 with one of this round's changes undone each: the two-pass attention
#               backward (CFPIPE_ATTN_BWD=recompute), bf16 copies of weights only
#               (CFPIPE_CUDA_BF16_CACHE=weights), copies made by the GEMMs only (CFPIPE_CUDA_BF16_FILL=0),
#               bias by its own kernel (CFPIPE_CUDA_GEMM_BIAS=0), noise drawn on the host
#               (CFPIPE_CUDA_HOST_NOISE=1)
#     repeat    cuda_bench bf16 twice more (the step figures of three runs)
#     train     test_cuda_train bf16;  train32: test_cuda_train (fp32)
#     graphs    cuda_bench --graphs, bf16 then fp32: the GPU preset's tiny model with CUDA graphs vs without
#     torch     the comparison against PyTorch (cached figures unless TORCH_MEASURE)
set -u
budget=${1:-570}
stages=${2:-build,parity,bench,train,torch}
source "$(dirname "$0")/cuda-run-common.sh"
bd=native/build-gpu

nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader
if want build; then
  stamp build
  { cmake -S native -B $bd -DCMAKE_BUILD_TYPE=Release -DCFPIPE_CUDA_VERBOSE=ON &&
    cmake --build $bd -j "$(nproc)" --target cfpipe_cuda test_cuda_parity test_cuda_train cuda_bench; } > "$out/build.log" 2>&1 ||
    { grep -E "error" -A3 "$out/build.log" | head -40; exit 1; }
  grep -E "cfpipe:" "$out/build.log"
  # registers / spills of the bf16 attention kernels
  grep -A2 "k_fa_" "$out/build.log" | grep -E "registers|spill" | sort | uniq -c | head -24
fi
if want parity || want parity16; then
  stamp "test_cuda_parity bf16"
  timeout 200 $bd/test_cuda_parity bf16 > "$out/parity.log" 2>&1; echo "exit $?"
  grep -E "attention|model|loss|FAIL|failed|passed|determin|sampler" "$out/parity.log" | grep -vE "^\s*$" | head -80
fi
if want parity; then
  stamp "test_cuda_parity fp32"
  timeout 150 $bd/test_cuda_parity >> "$out/parity.log" 2>&1; echo "exit $?"
  grep -E "FAIL|failed|passed" "$out/parity.log" | tail -5
fi
if want variant; then
  stamp "variant tiles: test_cuda_parity bf16 attention"
  CFPIPE_ATTN_FWD_MT=1 CFPIPE_ATTN_DKV_Q=32 timeout 60 $bd/test_cuda_parity bf16 attention > "$out/variant.log" 2>&1; echo "exit $?"
  grep -E "FAIL|failed|passed" "$out/variant.log" | tail -8
  stamp "variant tiles: cuda_bench bf16 --profile"
  CFPIPE_ATTN_FWD_MT=1 CFPIPE_ATTN_DKV_Q=32 timeout 120 $bd/cuda_bench --precision bf16 --profile >> "$out/variant.log" 2>&1; echo "exit $?"
  grep -E "attention|by kind|step|generation|latency" "$out/variant.log" | head -30
fi
if want bench || want bench16; then
  stamp "cuda_bench bf16 --gemm"
  timeout 200 $bd/cuda_bench --precision bf16 --gemm > "$out/bench_bf16.log" 2>&1; echo "exit $?"
  cat "$out/bench_bf16.log"
fi
if want ab; then
  for v in CFPIPE_ATTN_BWD=recompute CFPIPE_CUDA_BF16_CACHE=weights CFPIPE_CUDA_BF16_FILL=0 CFPIPE_CUDA_GEMM_BIAS=0 \
    CFPIPE_CUDA_HOST_NOISE=1; do
    stamp "cuda_bench bf16 with $v"
    { echo "=== $v"; env "$v" timeout 100 $bd/cuda_bench --precision bf16 2>&1; } > "$out/ab.tmp"; echo "exit $?"
    grep -E "step|generation|latency" "$out/ab.tmp"
    cat "$out/ab.tmp" >> "$out/ab.log" && rm "$out/ab.tmp"
  done
fi
if want repeat; then
  for r in 2 3; do
    stamp "cuda_bench bf16, run $r"
    { echo "=== run $r"; timeout 100 $bd/cuda_bench --precision bf16 2>&1; } > "$out/repeat.tmp"; echo "exit $?"
    grep -E "step|generation|latency" "$out/repeat.tmp"
    cat "$out/repeat.tmp" >> "$out/repeat.log" && rm "$out/repeat.tmp"
  done
fi
if want bench; then
  stamp "cuda_bench fp32 --profile"
  timeout 150 $bd/cuda_bench --precision fp32 --profile > "$out/bench_fp32.log" 2>&1; echo "exit $?"
  grep -vE "^  gemm " "$out/bench_fp32.log" | head -40
  stamp "cuda_bench bf16, cuBLASLt fast-16BF mode"
  CFPIPE_CUDA_BF16_GEMM=fast timeout 100 $bd/cuda_bench --precision bf16 > "$out/bench_fast.log" 2>&1; echo "exit $?"
  grep -E "step|generation|latency" "$out/bench_fast.log"
fi
if want train && [ "$(left)" -gt 120 ]; then
  stamp "test_cuda_train bf16"
  timeout 150 $bd/test_cuda_train bf16 > "$out/train.log" 2>&1; echo "exit $?"
  grep -E "worst|resume|FAIL|failed" "$out/train.log" | head -30
fi
if want train32 && [ "$(left)" -gt 100 ]; then
  stamp "test_cuda_train fp32"
  timeout $(( $(left) - 40 )) $bd/test_cuda_train > "$out/train32.log" 2>&1; echo "exit $?"
  grep -E "worst|resume|FAIL|failed" "$out/train32.log" | head -30
fi
if want graphs; then
  for p in bf16 fp32; do
    stamp "cuda_bench --graphs $p"
    timeout 120 $bd/cuda_bench --graphs --precision $p > "$out/graphs_$p.log" 2>&1; echo "exit $?"
    cat "$out/graphs_$p.log"
  done
fi
if want torch && [ "$(left)" -gt 20 ]; then
  benches="$out/bench_bf16.log"
  [ -f "$out/bench_fp32.log" ] && benches="$out/bench_fp32.log $benches"
  if [ -f test/bench/cuda-bench-torch.json ]; then
    # Cached PyTorch figures (they do not change with our code); re-measure only ${TORCH_MEASURE}.
    stamp "PyTorch ${TORCH_MEASURE:-none} (budget $(( $(left) - 30 )) s), the rest cached"
    if [ -n "${TORCH_MEASURE:-}" ]; then
      PYTHONUNBUFFERED=1 python3 test/bench/cuda-bench.py $benches \
        --cached test/bench/cuda-bench-torch.json --torch-json "$out/torch.json" --measure "$TORCH_MEASURE" \
        --budget $(( $(left) - 30 )) 2>&1 | grep -vE "Warning|warn" | tee "$out/torch.log" | tail -60
    else
      python3 test/bench/cuda-bench.py $benches \
        --cached test/bench/cuda-bench-torch.json 2>&1 | tee "$out/torch.log" | tail -60
    fi
  else
    stamp "PyTorch (budget $(( $(left) - 40 )) s)"
    PYTHONUNBUFFERED=1 python3 test/bench/cuda-bench.py $benches \
      --torch-json "$out/torch.json" --budget $(( $(left) - 40 )) 2>&1 | grep -vE "Warning|warn" | tee "$out/torch.log" | tail -60
  fi
fi
stamp done
