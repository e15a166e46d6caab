// Long native jobs from JS: each job runs on its own std::thread (never the libuv pool, which fs
// and dns share), reports progress through a thread-safe function, stops cooperatively when
// cancel() is called (the TypeScript side wires an AbortSignal to it), and settles a Promise on
// the JS thread. Exceptions thrown by the job become rejected promises with file:line.
//
// JS sees { promise, cancel }: promise resolves with what the job's result builder returns.
#pragma once
#include <napi.h>

#include <functional>
#include <string>

#include "core/job.h"

namespace cfp_binding {

// Runs on the JS thread once the job finished: turns the native result into a JS value.
using ResultBuilder = std::function<Napi::Value(Napi::Env)>;
// Runs on the job's thread. Must not touch any Napi value.
using JobWork = std::function<ResultBuilder(cfp::JobContext&)>;

// `on_progress` may be undefined; when it is a function it is called with
// {step, total, metrics: {name: number}, checkpoint?: string}. If it throws, the job is cancelled
// and the promise rejects with that exception.
Napi::Object start_job(Napi::Env env, const std::string& name, Napi::Value on_progress, JobWork work);

}  // namespace cfp_binding
