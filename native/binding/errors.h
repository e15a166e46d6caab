// Native failures as JS exceptions: a cfp::Error becomes an Error whose message ends with
// "(native/core/x.cpp:123)" and which carries `file`, `line` and `code: 'CFP_NATIVE'`; any other
// C++ exception becomes an Error with code 'CFP_NATIVE_UNEXPECTED'. Nothing aborts the process.
#pragma once
#include <napi.h>

#include <exception>
#include <string>

namespace cfp_binding {

// A failure captured on any thread, turned into a JS Error later on the JS thread.
struct ErrorInfo {
  std::string message;  // without the location
  std::string file;     // empty when unknown
  int line = 0;
  std::string code;
};

// Describes the exception in flight; call inside a catch block.
ErrorInfo capture_current_exception();
Napi::Error to_js_error(Napi::Env env, const ErrorInfo& info);
// A TypeError for bad arguments from JS (the caller's mistake; no native location).
[[noreturn]] void throw_type_error(Napi::Env env, const std::string& message);

// Wraps a synchronous binding function so native exceptions become JS exceptions with file:line.
template <Napi::Value (*F)(const Napi::CallbackInfo&)>
Napi::Value guarded(const Napi::CallbackInfo& info) {
  try {
    return F(info);
  } catch (const Napi::Error&) {
    throw;  // already a JS exception
  } catch (...) {
    throw to_js_error(info.Env(), capture_current_exception());
  }
}

}  // namespace cfp_binding
