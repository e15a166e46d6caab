#include "binding/job_runner.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>

#include "binding/errors.h"

namespace cfp_binding {

namespace {

class Job : public cfp::JobContext {
 public:
  Job(Napi::Env env, bool has_callback) : deferred(Napi::Promise::Deferred::New(env)), has_callback_(has_callback) {}

  bool cancelled() const override { return cancel_requested.load(std::memory_order_relaxed); }

  void report(const cfp::JobProgress& progress) override {
    if (!has_callback_) return;
    auto* data = new cfp::JobProgress(progress);
    // Blocks while the queue is full, so a slow JS side throttles the job instead of buffering
    // unboundedly. When the environment is closing the call fails: stop the job.
    const napi_status status = tsfn.BlockingCall(data, [this](Napi::Env env, Napi::Function callback, cfp::JobProgress* p) {
      std::unique_ptr<cfp::JobProgress> owned(p);
      if (callback_failed_) return;
      Napi::Object event = Napi::Object::New(env);
      event.Set("step", Napi::Number::New(env, static_cast<double>(p->step)));
      event.Set("total", Napi::Number::New(env, static_cast<double>(p->total)));
      Napi::Object metrics = Napi::Object::New(env);
      for (const auto& [k, v] : p->metrics) metrics.Set(k, Napi::Number::New(env, v));
      event.Set("metrics", metrics);
      if (!p->checkpoint.empty()) event.Set("checkpoint", p->checkpoint);
      try {
        callback.Call({event});
      } catch (const Napi::Error& e) {
        callback_failed_ = true;
        callback_error_ = Napi::Persistent(e.Value());
        cancel_requested = true;
      }
    });
    if (status != napi_ok) {
      delete data;
      cancel_requested = true;
    }
  }

  // Called on the JS thread after the job's thread released the function (or at teardown).
  void settle(Napi::Env env) {
    cancel_requested = true;  // at environment teardown the job may still be running
    if (thread.joinable()) thread.join();
    Napi::HandleScope scope(env);
    try {
      if (callback_failed_) {
        deferred.Reject(callback_error_.Value());
      } else if (failed) {
        deferred.Reject(to_js_error(env, error).Value());
      } else {
        deferred.Resolve(build(env));
      }
    } catch (const Napi::Error& e) {
      deferred.Reject(e.Value());
    } catch (...) {
      deferred.Reject(to_js_error(env, capture_current_exception()).Value());
    }
  }

  std::atomic<bool> cancel_requested{false};
  Napi::ThreadSafeFunction tsfn;
  Napi::Promise::Deferred deferred;
  std::thread thread;
  // Written by the job thread before it releases the function; read by settle() after.
  ResultBuilder build;
  bool failed = false;
  ErrorInfo error;

 private:
  bool has_callback_;
  bool callback_failed_ = false;  // touched only on the JS thread
  Napi::ObjectReference callback_error_;
};

struct Holder {
  std::shared_ptr<Job> job;
};

}  // namespace

Napi::Object start_job(Napi::Env env, const std::string& name, Napi::Value on_progress, JobWork work) {
  const bool has_callback = on_progress.IsFunction();
  if (!has_callback && !on_progress.IsUndefined() && !on_progress.IsNull())
    throw_type_error(env, name + ": onProgress must be a function, got " + on_progress.ToString().Utf8Value());
  auto job = std::make_shared<Job>(env, has_callback);
  Napi::Function callback = has_callback ? on_progress.As<Napi::Function>() : Napi::Function::New(env, [](const Napi::CallbackInfo&) {});
  auto* holder = new Holder{job};
  job->tsfn = Napi::ThreadSafeFunction::New(env, callback, "cfpipe:" + name, 16, 1,
                                            [](Napi::Env finalize_env, Holder* h) {
                                              h->job->settle(finalize_env);
                                              delete h;
                                            },
                                            holder);
  Job* raw = job.get();
  raw->thread = std::thread([raw, work = std::move(work)]() {
    try {
      raw->build = work(*raw);
    } catch (...) {
      raw->failed = true;
      raw->error = capture_current_exception();
    }
    raw->tsfn.Release();
  });

  Napi::Object handle = Napi::Object::New(env);
  handle.Set("promise", job->deferred.Promise());
  std::weak_ptr<Job> weak = job;
  handle.Set("cancel", Napi::Function::New(env, [weak](const Napi::CallbackInfo&) {
               if (auto j = weak.lock()) j->cancel_requested = true;
             }, "cancel"));
  return handle;
}

}  // namespace cfp_binding
