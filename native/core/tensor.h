// Tensors of the native engine: contiguous, row-major buffers with a shape and no strides.
// The memory of a Tensor is owned by the backend that allocated it (host memory for the CPU
// backend, device memory for CUDA): the buffer carries the backend's deleter, so a Tensor can
// be moved or shared without knowing which backend made it. HostView is a non-owning view of
// host memory, used to move data in and out of a backend (upload/download) and by I/O code.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"

namespace cfp {

using Shape = std::vector<int64_t>;

inline int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

inline std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

// An owning tensor. Copying a Tensor shares the buffer (like a shared_ptr); use the backend's
// copy op for a deep copy. T is float on every backend; the CPU backend also has double for
// gradient checks.
template <class T>
class Tensor {
 public:
  Tensor() = default;
  Tensor(std::shared_ptr<T> buffer, Shape shape) : buffer_(std::move(buffer)), shape_(std::move(shape)) {}

  T* data() { return buffer_.get(); }
  const T* data() const { return buffer_.get(); }
  const Shape& shape() const { return shape_; }
  int64_t numel() const { return shape_numel(shape_); }
  int64_t dim(size_t i) const {
    CFP_CHECK(i < shape_.size(), "dim %zu out of range for shape %s", i, shape_str(shape_).c_str());
    return shape_[i];
  }
  bool empty() const { return buffer_ == nullptr; }

  // Same buffer, new shape with the same element count.
  Tensor reshaped(Shape shape) const {
    CFP_CHECK(shape_numel(shape) == numel(), "reshape %s -> %s changes the element count",
              shape_str(shape_).c_str(), shape_str(shape).c_str());
    return Tensor(buffer_, std::move(shape));
  }

 private:
  std::shared_ptr<T> buffer_;
  Shape shape_;
};

// A non-owning view of host memory with a shape.
template <class T>
struct HostView {
  T* data = nullptr;
  Shape shape;
  int64_t numel() const { return shape_numel(shape); }
};

}  // namespace cfp
