#!/usr/bin/env bash
# Sampling cost per video of the tiny preset: ./native-samplers.sh [threads=2] [reps=3].
set -euo pipefail
source "$(dirname "$0")/native-bench-common.sh"
build_bench bench_samplers build-bench-samplers
"$bench_bin" "${1:-2}" "${2:-3}"
