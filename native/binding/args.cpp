#include "binding/args.h"

#include <cmath>
#include <cstring>

#include "binding/errors.h"

namespace cfp_binding {

std::string describe(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsTypedArray()) {
    switch (v.As<Napi::TypedArray>().TypedArrayType()) {
      case napi_int8_array: return "Int8Array";
      case napi_uint8_array: return "Uint8Array";
      case napi_uint8_clamped_array: return "Uint8ClampedArray";
      case napi_int16_array: return "Int16Array";
      case napi_uint16_array: return "Uint16Array";
      case napi_int32_array: return "Int32Array";
      case napi_uint32_array: return "Uint32Array";
      case napi_float32_array: return "Float32Array";
      case napi_float64_array: return "Float64Array";
      case napi_bigint64_array: return "BigInt64Array";
      case napi_biguint64_array: return "BigUint64Array";
      default: return "a typed array";
    }
  }
  if (v.IsArray()) return "an array";
  if (v.IsString()) return "a string";
  if (v.IsNumber()) return "a number";
  if (v.IsBoolean()) return "a boolean";
  if (v.IsFunction()) return "a function";
  if (v.IsBigInt()) return "a bigint";
  if (v.IsObject()) return "an object";
  return "a value of another type";
}

Napi::Object expect_object(const Napi::Value& v, const std::string& where) {
  if (!v.IsObject() || v.IsArray() || v.IsFunction()) throw_type_error(v.Env(), where + " must be an object, got " + describe(v));
  return v.As<Napi::Object>();
}

std::string expect_string(const Napi::Value& v, const std::string& where) {
  if (!v.IsString()) throw_type_error(v.Env(), where + " must be a string, got " + describe(v));
  return v.As<Napi::String>().Utf8Value();
}

double expect_number(const Napi::Value& v, const std::string& where) {
  if (!v.IsNumber()) throw_type_error(v.Env(), where + " must be a number, got " + describe(v));
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) throw_type_error(v.Env(), where + " must be a finite number, got " + std::to_string(d));
  return d;
}

int64_t expect_int(const Napi::Value& v, const std::string& where, int64_t min, int64_t max) {
  const double d = expect_number(v, where);
  if (d != std::floor(d) || d < static_cast<double>(min) || d > static_cast<double>(max)) {
    throw_type_error(v.Env(), where + " must be an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "], got " +
                                  Napi::Number::New(v.Env(), d).ToString().Utf8Value());
  }
  return static_cast<int64_t>(d);
}

bool expect_bool(const Napi::Value& v, const std::string& where) {
  if (!v.IsBoolean()) throw_type_error(v.Env(), where + " must be a boolean, got " + describe(v));
  return v.As<Napi::Boolean>().Value();
}

std::vector<int64_t> expect_shape(const Napi::Value& v, const std::string& where) {
  if (!v.IsArray()) throw_type_error(v.Env(), where + " must be an array of non-negative integers, got " + describe(v));
  const Napi::Array a = v.As<Napi::Array>();
  if (a.Length() > 8) throw_type_error(v.Env(), where + " has " + std::to_string(a.Length()) + " dimensions, at most 8 are supported");
  std::vector<int64_t> shape;
  for (uint32_t i = 0; i < a.Length(); ++i)
    shape.push_back(expect_int(a.Get(i), where + "[" + std::to_string(i) + "]", 0, int64_t{1} << 40));
  return shape;
}

bool has(const Napi::Object& o, const char* key) { return o.Has(key) && !o.Get(key).IsUndefined(); }

std::vector<double> number_list(const Napi::Object& o, const char* key, const std::string& where) {
  std::vector<double> out;
  if (!has(o, key)) return out;
  const Napi::Value v = o.Get(key);
  if (!v.IsArray()) throw_type_error(o.Env(), where + "." + key + " must be an array of numbers, got " + describe(v));
  const Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(expect_number(a.Get(i), where + "." + key + "[" + std::to_string(i) + "]"));
  return out;
}

std::string opt_string(const Napi::Object& o, const char* key, const std::string& fallback, const std::string& where) {
  return has(o, key) ? expect_string(o.Get(key), where + "." + key) : fallback;
}
double opt_number(const Napi::Object& o, const char* key, double fallback, const std::string& where) {
  return has(o, key) ? expect_number(o.Get(key), where + "." + key) : fallback;
}
int64_t opt_int(const Napi::Object& o, const char* key, int64_t fallback, const std::string& where, int64_t min, int64_t max) {
  return has(o, key) ? expect_int(o.Get(key), where + "." + key, min, max) : fallback;
}
bool opt_bool(const Napi::Object& o, const char* key, bool fallback, const std::string& where) {
  return has(o, key) ? expect_bool(o.Get(key), where + "." + key) : fallback;
}

std::vector<float> copy_float32(const Napi::Value& v, const std::string& where, int64_t expected_length) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw_type_error(v.Env(), where + " must be a Float32Array, got " + describe(v));
  const Napi::Float32Array a = v.As<Napi::Float32Array>();
  if (expected_length >= 0 && static_cast<int64_t>(a.ElementLength()) != expected_length) {
    throw_type_error(v.Env(), where + " has " + std::to_string(a.ElementLength()) + " values, expected " + std::to_string(expected_length));
  }
  return std::vector<float>(a.Data(), a.Data() + a.ElementLength());
}

namespace {
// The typed-array element type a dtype's raw bytes are exchanged as.
napi_typedarray_type raw_array_type(cfp::DType d) {
  switch (d) {
    case cfp::DType::F32: return napi_float32_array;
    case cfp::DType::F16:
    case cfp::DType::BF16: return napi_uint16_array;
    case cfp::DType::F64: return napi_float64_array;
    case cfp::DType::I64: return napi_bigint64_array;
    case cfp::DType::I32: return napi_int32_array;
    case cfp::DType::U8: return napi_uint8_array;
    case cfp::DType::U64: return napi_biguint64_array;
  }
  return napi_uint8_array;
}
const char* raw_array_name(cfp::DType d) {
  switch (d) {
    case cfp::DType::F32: return "Float32Array";
    case cfp::DType::F16:
    case cfp::DType::BF16: return "Uint16Array (raw bits) or Float32Array";
    case cfp::DType::F64: return "Float64Array";
    case cfp::DType::I64: return "BigInt64Array";
    case cfp::DType::I32: return "Int32Array";
    case cfp::DType::U8: return "Uint8Array";
    case cfp::DType::U64: return "BigUint64Array";
  }
  return "?";
}
}  // namespace

std::vector<cfp::TensorRef> tensor_refs(const Napi::Value& list, const std::string& where, std::vector<std::vector<uint16_t>>& scratch) {
  Napi::Env env = list.Env();
  if (!list.IsArray()) throw_type_error(env, where + " must be an array of {name, dtype, shape, data}, got " + describe(list));
  const Napi::Array a = list.As<Napi::Array>();
  std::vector<cfp::TensorRef> refs;
  scratch.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i) {
    const std::string at = where + "[" + std::to_string(i) + "]";
    const Napi::Object t = expect_object(a.Get(i), at);
    cfp::TensorRef r;
    r.name = expect_string(t.Get("name"), at + ".name");
    const std::string label = at + " (\"" + r.name + "\")";
    const std::string dtype = t.Has("dtype") && !t.Get("dtype").IsUndefined() ? expect_string(t.Get("dtype"), label + ".dtype") : "F32";
    if (!cfp::parse_dtype(dtype, &r.dtype))
      throw_type_error(env, label + ".dtype must be one of F32, F16, BF16, F64, I64, I32, U8, U64, got \"" + dtype + "\"");
    r.shape = expect_shape(t.Get("shape"), label + ".shape");
    size_t numel = 1;
    for (int64_t d : r.shape) numel *= static_cast<size_t>(d);
    const Napi::Value data = t.Get("data");
    if (!data.IsTypedArray()) throw_type_error(env, label + ".data must be a " + std::string(raw_array_name(r.dtype)) + ", got " + describe(data));
    const Napi::TypedArray ta = data.As<Napi::TypedArray>();
    const bool half = r.dtype == cfp::DType::F16 || r.dtype == cfp::DType::BF16;
    const bool convert = half && ta.TypedArrayType() == napi_float32_array;
    if (!convert && ta.TypedArrayType() != raw_array_type(r.dtype)) {
      throw_type_error(env, label + ".data is a " + describe(data) + ", expected a " + raw_array_name(r.dtype) + " for dtype " + dtype);
    }
    if (ta.ElementLength() != numel) {
      throw_type_error(env, label + ".data has " + std::to_string(ta.ElementLength()) + " values, expected " + std::to_string(numel) +
                                " for shape " + cfp::shape_string(r.shape));
    }
    const auto* bytes = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    if (convert) {
      const auto* f = reinterpret_cast<const float*>(bytes);
      scratch.emplace_back(numel);
      for (size_t k = 0; k < numel; ++k) scratch.back()[k] = r.dtype == cfp::DType::F16 ? cfp::f32_to_f16(f[k]) : cfp::f32_to_bf16(f[k]);
      r.data = scratch.back().data();
    } else {
      r.data = bytes;
    }
    refs.push_back(std::move(r));
  }
  return refs;
}

Napi::Object tensor_to_js(Napi::Env env, const cfp::SafetensorsFile& file, const cfp::TensorInfo& t, bool to_f32) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("name", t.name);
  out.Set("dtype", cfp::dtype_name(t.dtype));
  Napi::Array shape = Napi::Array::New(env, t.shape.size());
  for (size_t i = 0; i < t.shape.size(); ++i) shape.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(t.shape[i])));
  out.Set("shape", shape);
  const size_t n = t.numel();
  const bool floating = t.dtype == cfp::DType::F32 || t.dtype == cfp::DType::F16 || t.dtype == cfp::DType::BF16 || t.dtype == cfp::DType::F64;
  if (to_f32 && floating) {
    const std::vector<float> v = file.to_f32(t);
    Napi::Float32Array a = Napi::Float32Array::New(env, n);
    if (n) std::memcpy(a.Data(), v.data(), n * 4);
    out.Set("data", a);
    return out;
  }
  const size_t bytes = t.end - t.begin;
  Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, bytes);
  if (bytes) std::memcpy(buf.Data(), file.data(t), bytes);
  napi_value array = nullptr;
  if (napi_create_typedarray(env, raw_array_type(t.dtype), n, buf, 0, &array) != napi_ok) throw Napi::Error::New(env);
  out.Set("data", Napi::Value(env, array));
  return out;
}

Napi::Object metadata_to_js(Napi::Env env, const cfp::Metadata& meta) {
  Napi::Object o = Napi::Object::New(env);
  for (const auto& [k, v] : meta) o.Set(k, v);
  return o;
}

cfp::Metadata metadata_from_js(const Napi::Value& v, const std::string& where) {
  cfp::Metadata meta;
  if (v.IsUndefined()) return meta;
  const Napi::Object o = expect_object(v, where);
  const Napi::Array keys = o.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); ++i) {
    const std::string k = keys.Get(i).ToString().Utf8Value();
    meta[k] = expect_string(o.Get(k), where + "[\"" + k + "\"]");
  }
  return meta;
}

}  // namespace cfp_binding
