#!/usr/bin/env bash
# Masked attention time on the tiny preset's shapes, new kernels vs the previous scalar kernel
# measured in the same run: ./native-attention.sh [threads=2] [batch=8].
set -euo pipefail
source "$(dirname "$0")/native-bench-common.sh"
build_bench bench_attention build-bench
"$bench_bin" "${1:-2}" "${2:-8}"
