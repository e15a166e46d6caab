// Registers the long-running jobs (fitLinear now; train/sample when the model lands).
#pragma once
#include <napi.h>

namespace cfp_binding {
void register_jobs(Napi::Env env, Napi::Object exports);
}
