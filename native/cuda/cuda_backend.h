// The CUDA backend of the native engine: every op of core/backend.h as kernels on one CUDA
// stream, memory from cudaMalloc (never managed memory). Plain C++ header: code that includes it
// needs no nvcc, only a link against the cfpipe_cuda library (built where nvcc exists).
//
// Precision: storage is always fp32 (activations, gradients, master weights, optimizer state).
// In fp32 mode (the parity reference) all arithmetic is fp32. In bf16 mode (the default, for
// speed) the GEMMs round both operands to bf16 and run on the tensor cores with fp32 accumulation
// and fp32 output, and attention runs as a bf16 tensor-core flash kernel (fp32 softmax and
// accumulation); everything else (norms, modulation, activations, reductions, the optimizer)
// stays fp32. Determinism holds in both modes: reductions accumulate in double in a fixed order
// with no float atomics, GEMMs use one cuBLASLt algorithm per shape chosen once (or our tiled
// kernel where cuBLASLt is absent), attention sums each output in one thread, so two runs with the
// same inputs are bitwise identical on the same GPU.
#pragma once
#include <memory>
#include <string>

#include "core/backend.h"
#include "core/device.h"
#include "core/optim.h"

namespace cfp {

// Usable CUDA devices; 0 when there is no driver or no device, with the reason in *why (if given).
// Never throws.
int cuda_device_count(std::string* why = nullptr);

enum class CudaPrecision { fp32, bf16 };

// CFPIPE_CUDA_PRECISION=fp32|bf16 from the environment; bf16 when unset. Throws on other values.
CudaPrecision default_cuda_precision();
const char* cuda_precision_name(CudaPrecision p);

// CFPIPE_CUDA_GRAPHS=0|1 from the environment; on (1) when unset. Throws on other values.
bool default_cuda_graphs();

// The CUDA backend on `device` (0-based); `graphs`: replay recorded stretches as CUDA graphs
// (Backend::run_recorded). Throws cfp::Error when the device cannot be used.
std::unique_ptr<Backend<float>> make_cuda_backend(int device = 0, CudaPrecision precision = default_cuda_precision(),
                                                  bool graphs = default_cuda_graphs());

// The GEMM engine compiled in: "cublaslt" or "tiled".
const char* cuda_gemm_engine();

// Waits for all work queued by `backend` (a CUDA backend) to finish; a no-op for other backends.
// Benchmarks call it before reading a timer.
void cuda_synchronize(Backend<float>& backend);

// Recorded stretches (Backend::run_recorded) in this process so far: eager runs before a decision,
// stretches recorded as CUDA graphs, graph replays, declined (a stretch found device-bound, once;
// a call past an owner's key limit, each time) and recordings that failed (an op that cannot be
// captured).
struct CudaGraphStats {
  uint64_t eager = 0, recorded = 0, replayed = 0, declined = 0, failed = 0;
};
CudaGraphStats cuda_graph_stats();

// The device's name, e.g. "NVIDIA H200" (empty when unavailable).
std::string cuda_device_name(int device = 0);

// AdamW, grad-norm clipping and EMA as kernels on `cuda_backend`'s stream (buffers in its device
// memory). Per element the same float (AdamW) and double (EMA) arithmetic as core/optim.cpp, with
// no contraction into FMAs; the norm is the backend's fixed-order double reduction. Throws when
// `cuda_backend` is not a CUDA backend.
std::unique_ptr<OptimOps> make_cuda_optim_ops(Backend<float>& cuda_backend);

// The CUDA backend on `device` with its optimizer ops: the compute device of a GPU job.
ComputeDevice make_cuda_device(int device = 0, CudaPrecision precision = default_cuda_precision(),
                               bool graphs = default_cuda_graphs());

}  // namespace cfp
