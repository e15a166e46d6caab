// Reading JS arguments with messages that name the function, the field and what was expected.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/safetensors.h"

namespace cfp_binding {

// `where` names the value in messages, e.g. "fitLinear: options.steps".
Napi::Object expect_object(const Napi::Value& v, const std::string& where);
std::string expect_string(const Napi::Value& v, const std::string& where);
double expect_number(const Napi::Value& v, const std::string& where);
// An optional array of numbers at o[key] (empty when absent).
std::vector<double> number_list(const Napi::Object& o, const char* key, const std::string& where);
int64_t expect_int(const Napi::Value& v, const std::string& where, int64_t min, int64_t max);
bool expect_bool(const Napi::Value& v, const std::string& where);
std::vector<int64_t> expect_shape(const Napi::Value& v, const std::string& where);

// Optional fields: the default when the field is absent or undefined.
std::string opt_string(const Napi::Object& o, const char* key, const std::string& fallback, const std::string& where);
double opt_number(const Napi::Object& o, const char* key, double fallback, const std::string& where);
int64_t opt_int(const Napi::Object& o, const char* key, int64_t fallback, const std::string& where, int64_t min, int64_t max);
bool opt_bool(const Napi::Object& o, const char* key, bool fallback, const std::string& where);
bool has(const Napi::Object& o, const char* key);

// A Float32Array copied out (for jobs that outlive the call); checks the length when expected >= 0.
std::vector<float> copy_float32(const Napi::Value& v, const std::string& where, int64_t expected_length);

// The JS name of a typed array's element type ("Float32Array", ...) or the value's type.
std::string describe(const Napi::Value& v);

// Tensors given from JS as {name, dtype, shape, data}: checked and viewed in place (zero-copy;
// valid while the JS arrays are alive, i.e. during a synchronous call). F32 needs a Float32Array;
// F16/BF16 take a Uint16Array of raw bits or a Float32Array, which is converted into `scratch`.
std::vector<cfp::TensorRef> tensor_refs(const Napi::Value& list, const std::string& where, std::vector<std::vector<uint16_t>>& scratch);

// A tensor of a file as {name, dtype, shape, data}: data is a fresh Float32Array (F32), Uint16Array
// (F16/BF16 raw bits, or Float32Array when `to_f32`), Float64Array, BigInt64Array, Int32Array,
// Uint8Array or BigUint64Array.
Napi::Object tensor_to_js(Napi::Env env, const cfp::SafetensorsFile& file, const cfp::TensorInfo& t, bool to_f32);
Napi::Object metadata_to_js(Napi::Env env, const cfp::Metadata& meta);
cfp::Metadata metadata_from_js(const Napi::Value& v, const std::string& where);

}  // namespace cfp_binding
