// Registers the safetensors and checkpoint functions on the addon's exports.
#pragma once
#include <napi.h>

namespace cfp_binding {
void register_io(Napi::Env env, Napi::Object exports);
}
