// A fixed pool of worker threads, created once per backend. parallel_for splits [0, n) into one
// contiguous chunk per thread (a fixed partition: chunk i always covers the same range for a given
// n and thread count); the calling thread runs chunk 0. Kernels are written so each output element
// is produced by one chunk in a fixed order, which makes results independent of the partition.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace cfp {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return threads_; }
  // Calls fn(begin, end) on disjoint chunks covering [0, n). Chunks are at least `grain` long
  // (fewer threads are used for small n). Exceptions from chunks are rethrown on the caller.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

 private:
  void worker_loop(int index);

  int threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable start_cv_, done_cv_;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0;
  int job_chunks_ = 0;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
  std::mutex run_mutex_;  // one parallel_for at a time
};

}  // namespace cfp
