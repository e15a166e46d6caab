#!/usr/bin/env bash
# Training-step time per objective of the tiny preset: ./native-step.sh [threads=2] [batch=8].
set -euo pipefail
source "$(dirname "$0")/native-bench-common.sh"
build_bench bench_step build-bench
"$bench_bin" "${1:-2}" "${2:-8}"
