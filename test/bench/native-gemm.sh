#!/usr/bin/env bash
# GEMM benchmark: the native CPU GEMM beside OpenBLAS on the tiny model's shapes, same run, same
# thread count (argument 1, default 2). Installs libopenblas-dev when missing (Debian).
set -euo pipefail
source "$(dirname "$0")/native-bench-common.sh"
if [ ! -e /usr/include/x86_64-linux-gnu/cblas.h ] && [ ! -e /usr/include/cblas.h ]; then
  echo "installing libopenblas-dev ..." >&2
  (apt-get update -qq && apt-get install -y -qq libopenblas-dev) >/dev/null
fi
build_bench bench_gemm build-bench -lopenblas
"$bench_bin" "${1:-2}"
