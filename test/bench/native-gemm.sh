#!/usr/bin/env bash
# GEMM benchmark: the native CPU GEMM beside OpenBLAS on the tiny model's shapes, same run, same
# thread count (argument 1, default 2). Installs libopenblas-dev when missing (Debian).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
if [ ! -e /usr/include/x86_64-linux-gnu/cblas.h ] && [ ! -e /usr/include/cblas.h ]; then
  echo "installing libopenblas-dev ..." >&2
  (apt-get update -qq && apt-get install -y -qq libopenblas-dev) >/dev/null
fi
build="$root/native/build-bench"
cmake -S "$root/native" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 --target cfpipe_core >/dev/null
g++ -std=c++17 -O3 -march=x86-64-v2 -mavx2 -mfma -I "$root/native" "$root/native/tests/bench_gemm.cpp" \
  "$build/libcfpipe_core.a" -lopenblas -lpthread -o "$build/bench_gemm"
"$build/bench_gemm" "${1:-2}"
