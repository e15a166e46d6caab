#!/usr/bin/env bash
# Training-step time per objective of the tiny preset: ./native-step.sh [threads=2] [batch=8].
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="$root/native/build-bench"
cmake -S "$root/native" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 --target cfpipe_core >/dev/null
g++ -std=c++17 -O3 -march=x86-64-v2 -mavx2 -mfma -I "$root/native" "$root/native/tests/bench_step.cpp" \
  "$build/libcfpipe_core.a" -lpthread -o "$build/bench_step"
"$build/bench_step" "${1:-2}" "${2:-8}"
