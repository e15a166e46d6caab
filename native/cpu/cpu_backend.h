// The CPU backend: host memory, a packed AVX2/FMA GEMM and fused element-wise kernels, threaded
// over a pool created once with a fixed work partition (bitwise deterministic, and independent of
// the thread count). Instantiated for float (training) and double (gradient checks).
#pragma once
#include <memory>

#include "core/backend.h"

namespace cfp {

// threads <= 0 means std::thread::hardware_concurrency().
template <class T>
std::unique_ptr<Backend<T>> make_cpu_backend(int threads = 0);

}  // namespace cfp
