// Registers the model functions (config, parameter table, initial weights, forward).
#pragma once
#include <napi.h>

#include <string>

#include "core/model.h"

namespace cfp_binding {
void register_model(Napi::Env env, Napi::Object exports);
// A ModelConfigInput from JS (preset + overrides), validated; `where` names it in messages.
cfp::ModelConfig model_config_from_js(const Napi::Value& v, const std::string& where);
}
