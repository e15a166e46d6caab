#include "binding/errors.h"

#include "core/error.h"

namespace cfp_binding {

namespace {
// __FILE__ is absolute; keep the part from "native/" so messages are short and stable.
std::string short_file(const char* file) {
  std::string f = file ? file : "";
  const size_t at = f.rfind("/native/");
  return at == std::string::npos ? f : f.substr(at + 1);
}
}  // namespace

ErrorInfo capture_current_exception() {
  ErrorInfo info;
  try {
    throw;
  } catch (const cfp::Error& e) {
    info.message = e.message();
    info.file = short_file(e.file());
    info.line = e.line();
    info.code = "CFP_NATIVE";
  } catch (const std::bad_alloc&) {
    info.message = "out of memory in the native engine";
    info.code = "CFP_NATIVE_OOM";
  } catch (const std::exception& e) {
    info.message = std::string("unexpected native error: ") + e.what();
    info.code = "CFP_NATIVE_UNEXPECTED";
  } catch (...) {
    info.message = "unexpected native error of unknown type";
    info.code = "CFP_NATIVE_UNEXPECTED";
  }
  return info;
}

Napi::Error to_js_error(Napi::Env env, const ErrorInfo& info) {
  std::string message = info.message;
  if (!info.file.empty()) message += " (" + info.file + ":" + std::to_string(info.line) + ")";
  Napi::Error error = Napi::Error::New(env, message);
  Napi::Object obj = error.Value();
  obj.Set("code", Napi::String::New(env, info.code));
  if (!info.file.empty()) {
    obj.Set("file", Napi::String::New(env, info.file));
    obj.Set("line", Napi::Number::New(env, info.line));
  }
  return error;
}

void throw_type_error(Napi::Env env, const std::string& message) {
  Napi::TypeError error = Napi::TypeError::New(env, message);
  error.Value().Set("code", Napi::String::New(env, "CFP_INVALID_ARGUMENT"));
  throw error;
}

}  // namespace cfp_binding
