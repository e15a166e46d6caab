#!/usr/bin/env bash
# Sampling cost per video of the tiny preset: ./native-samplers.sh [threads=2] [reps=3].
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="$root/native/build-bench-samplers"
cmake -S "$root/native" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 --target cfpipe_core >/dev/null
g++ -std=c++17 -O3 -march=x86-64-v2 -mavx2 -mfma -I "$root/native" "$root/native/tests/bench_samplers.cpp" \
  "$build/libcfpipe_core.a" -lpthread -o "$build/bench_samplers"
"$build/bench_samplers" "${1:-2}" "${2:-3}"
