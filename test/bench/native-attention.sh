#!/usr/bin/env bash
# Masked attention time on the tiny preset's shapes, new kernels vs the previous scalar kernel
# measured in the same run: ./native-attention.sh [threads=2] [batch=8].
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="$root/native/build-bench"
cmake -S "$root/native" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 --target cfpipe_core >/dev/null
g++ -std=c++17 -O3 -march=x86-64-v2 -mavx2 -mfma -I "$root/native" "$root/native/tests/bench_attention.cpp" \
  "$build/libcfpipe_core.a" -lpthread -o "$build/bench_attention"
"$build/bench_attention" "${1:-2}" "${2:-8}"
