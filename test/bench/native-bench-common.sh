# Sourced by test/bench/native-*.sh: builds the core library (Release) and links one benchmark of
# native/tests against it.
#   build_bench NAME BUILD_DIR [LIB...]  builds native/tests/NAME.cpp in native/BUILD_DIR with the
#                                        extra link flags LIB... and sets bench_bin to the binary.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

build_bench() {
  local name="$1" build="$root/native/$2"
  shift 2
  cmake -S "$root/native" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" -j2 --target cfpipe_core >/dev/null
  g++ -std=c++17 -O3 -march=x86-64-v2 -mavx2 -mfma -I "$root/native" "$root/native/tests/$name.cpp" \
    "$build/libcfpipe_core.a" "$@" -lpthread -o "$build/$name"
  bench_bin="$build/$name"
}
