// safetensors files: the weights format of the field (loadable from PyTorch with the `safetensors`
// package). Layout: an 8-byte little-endian header length N, N bytes of JSON (padded with spaces to
// a multiple of 8 so the data starts 8-byte aligned), then the tensors' bytes back to back.
//   {"__metadata__": {"k": "v"}, "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}
// data_offsets are relative to the start of the data section. Reading validates everything (JSON
// syntax, dtypes, shapes vs byte sizes, bounds, overlaps and holes) and throws a cfp::Error naming
// the file and what is wrong; nothing in a file can make the reader crash.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace cfp {

enum class DType { F32, F16, BF16, F64, I64, I32, U8, U64 };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);  // "F32", "F16", "BF16", ...
// Parses a safetensors dtype name; false when it is not one we support.
bool parse_dtype(const std::string& name, DType* out);

// Half-precision conversions (round to nearest even; NaN stays NaN).
uint16_t f32_to_f16(float x);
float f16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float x);
float bf16_to_f32(uint16_t h);

// A tensor to write: borrowed bytes (numel(shape) * dtype_size(dtype) of them).
struct TensorRef {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
};

// A tensor in a file that was read: where its bytes sit in the data section.
struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  size_t begin = 0;  // byte offsets into the data section
  size_t end = 0;
  size_t numel() const;
};

// Element count of a shape; throws on negative dimensions or size_t overflow.
size_t checked_numel(const std::vector<int64_t>& shape);
std::string shape_string(const std::vector<int64_t>& shape);  // "[2, 3]"

using Metadata = std::map<std::string, std::string>;

// The whole file's bytes plus the validated header. Tensors are listed in data order.
class SafetensorsFile {
 public:
  // Reads and validates a file. `label` (default: the path) names the file in error messages.
  static SafetensorsFile read(const std::string& path);
  // Validates bytes already in memory.
  static SafetensorsFile parse(std::vector<uint8_t> bytes, const std::string& label);

  const std::string& label() const { return label_; }
  const Metadata& metadata() const { return metadata_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;  // nullptr when absent
  const TensorInfo& get(const std::string& name) const;   // throws when absent
  const uint8_t* data(const TensorInfo& t) const { return bytes_.data() + data_start_ + t.begin; }
  // The raw header JSON (without padding) and the whole file, e.g. for checksums.
  std::string header_json() const;
  const std::vector<uint8_t>& bytes() const { return bytes_; }
  size_t data_start() const { return data_start_; }

  // Copies a tensor into `dst` as float32 (converting F16/BF16/F64); checks that the tensor has
  // exactly `expected_shape` and throws a message naming both shapes otherwise.
  void read_f32(const std::string& name, const std::vector<int64_t>& expected_shape, float* dst) const;
  std::vector<float> to_f32(const TensorInfo& t) const;

 private:
  std::string label_;
  std::vector<uint8_t> bytes_;
  size_t header_len_ = 0;
  size_t data_start_ = 0;
  Metadata metadata_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
};

// Builds a file's bytes; tensors are laid out in the given order. Throws on duplicate or empty
// names, null data, or a metadata key "__metadata__".
std::vector<uint8_t> serialize_safetensors(const std::vector<TensorRef>& tensors, const Metadata& metadata);

// Writes bytes durably and atomically: a temp file in the same directory, fsync, rename over
// `path`, fsync of the directory. A reader sees the old file or the new one, never a mix.
void write_file_atomic(const std::string& path, const uint8_t* bytes, size_t size);

// serialize_safetensors + write_file_atomic.
void write_safetensors(const std::string& path, const std::vector<TensorRef>& tensors, const Metadata& metadata);

// Reads a whole file; throws a cfp::Error naming the path when it cannot.
std::vector<uint8_t> read_file_bytes(const std::string& path);

// XXH64 of a byte range (the checksum of checkpoint files).
uint64_t xxhash64(const void* data, size_t size, uint64_t seed = 0);

}  // namespace cfp
