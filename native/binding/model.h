// Registers the model functions (config, parameter table, initial weights, forward).
#pragma once
#include <napi.h>

namespace cfp_binding {
void register_model(Napi::Env env, Napi::Object exports);
}
