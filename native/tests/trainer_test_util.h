// What the trainer tests on the CPU (test_trainer) and on the GPU (test_cuda_train) both need:
// a scratch directory per case and a seeded model's weights written as an init checkpoint.
#pragma once
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "core/error.h"
#include "core/model.h"
#include "core/safetensors.h"
#include "cpu/cpu_backend.h"

namespace cfp_test {

/** A fresh directory /tmp/cfp-<suite>-<tag>-XXXXXX. */
inline std::string temp_dir(const char* suite, const char* tag) {
  char tmpl[256];
  std::snprintf(tmpl, sizeof tmpl, "/tmp/cfp-%s-%s-XXXXXX", suite, tag);
  const char* d = mkdtemp(tmpl);
  CFP_CHECK(d != nullptr, "mkdtemp failed for %s", tmpl);
  return d;
}

/** A model initialised from `seed`, written under `dir` as a checked checkpoint with the generator. prefix. */
inline std::string write_seeded_weights(const std::string& dir, const cfp::ModelConfig& c, uint64_t seed) {
  auto be = cfp::make_cpu_backend<float>(1);
  cfp::Model<float> m(*be, c);
  m.init(seed);
  std::vector<cfp::TensorRef> refs;
  for (const cfp::ParamEntry& e : m.param_table())
    refs.push_back({std::string(cfp::kGeneratorPrefix) + e.name, cfp::DType::F32, e.shape, m.params().data() + e.offset});
  const std::string path = dir + "/init-" + std::to_string(seed) + ".safetensors";
  cfp::write_checked_safetensors(path, refs, {}, "weights", 0);
  return path;
}

}  // namespace cfp_test
