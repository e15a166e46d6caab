// safetensors reading/writing with full validation; see safetensors.h for the format.
#include "core/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <set>

#include "core/error.h"

namespace cfp {

// ---------------------------------------------------------------------------------------------
// dtypes and half-precision conversions

namespace {
struct DTypeRow {
  DType dtype;
  const char* name;
  size_t size;
};
constexpr DTypeRow kDTypes[] = {
    {DType::F32, "F32", 4}, {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2}, {DType::F64, "F64", 8},
    {DType::I64, "I64", 8}, {DType::I32, "I32", 4}, {DType::U8, "U8", 1},     {DType::U64, "U64", 8},
};
const DTypeRow& dtype_row(DType d) {
  for (const auto& r : kDTypes)
    if (r.dtype == d) return r;
  CFP_THROW("unknown dtype enum value %d", static_cast<int>(d));
}
uint32_t float_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}
float bits_float(uint32_t u) {
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}
}  // namespace

size_t dtype_size(DType dtype) { return dtype_row(dtype).size; }
const char* dtype_name(DType dtype) { return dtype_row(dtype).name; }
bool parse_dtype(const std::string& name, DType* out) {
  for (const auto& r : kDTypes) {
    if (name == r.name) {
      *out = r.dtype;
      return true;
    }
  }
  return false;
}

uint16_t f32_to_bf16(float x) {
  uint32_t u = float_bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
  return static_cast<uint16_t>(u >> 16);
}
float bf16_to_f32(uint16_t h) { return bits_float(static_cast<uint32_t>(h) << 16); }

uint16_t f32_to_f16(float x) {
  const uint32_t u = float_bits(x);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t absu = u & 0x7fffffffu;
  if (absu > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (absu >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (absu < 0x38800000u) {
    // Result is subnormal (or zero) in f16: value = m * 2^-24 with m = round(|x| * 2^24).
    const float scaled = bits_float(absu) * 16777216.0f;  // exact (power of two)
    const float r = std::nearbyint(scaled);                // default rounding mode: nearest even
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(r));
  }
  // Normal: rebias the exponent, round the 13 dropped mantissa bits to nearest even.
  uint32_t v = absu - (112u << 23);
  v += 0xfffu + ((v >> 13) & 1u);
  return static_cast<uint16_t>(sign | (v >> 13));
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t man = h & 0x3ffu;
  if (exp == 0) {
    const float mag = static_cast<float>(man) * (1.0f / 16777216.0f);  // man * 2^-24, exact
    return bits_float(float_bits(mag) | sign);
  }
  if (exp == 31) return bits_float(sign | 0x7f800000u | (man << 13));
  return bits_float(sign | ((exp + 112u) << 23) | (man << 13));
}

// ---------------------------------------------------------------------------------------------
// shapes

size_t checked_numel(const std::vector<int64_t>& shape) {
  size_t n = 1;
  for (int64_t d : shape) {
    CFP_CHECK(d >= 0, "negative dimension %lld in shape %s", static_cast<long long>(d), shape_string(shape).c_str());
    const auto ud = static_cast<size_t>(d);
    CFP_CHECK(ud == 0 || n <= std::numeric_limits<size_t>::max() / ud, "shape %s overflows", shape_string(shape).c_str());
    n *= ud;
  }
  return n;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

size_t TensorInfo::numel() const { return checked_numel(shape); }

// ---------------------------------------------------------------------------------------------
// A strict JSON reader, just enough for safetensors headers (RFC 8259 syntax; duplicate keys are
// rejected; nesting is limited so a hostile header cannot exhaust the stack).

namespace {

struct Json {
  enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
  bool boolean = false;
  std::string text;  // String: the decoded value; Number: the literal as written
  std::vector<Json> items;
  std::vector<std::pair<std::string, Json>> members;  // in file order
};

class JsonReader {
 public:
  JsonReader(const char* s, size_t n, const std::string& label) : s_(s), n_(n), label_(label) {}

  Json document() {
    skip_ws();
    Json v = value(0);
    skip_ws();
    if (pos_ != n_) fail("unexpected text after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    CFP_THROW("%s: corrupt safetensors header: %s at header byte %zu", label_.c_str(), what.c_str(), pos_);
  }
  void skip_ws() {
    while (pos_ < n_ && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  char peek() const { return pos_ < n_ ? s_[pos_] : '\0'; }
  void expect(char c) {
    if (pos_ >= n_ || s_[pos_] != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  void literal(const char* word) {
    const size_t len = std::strlen(word);
    if (n_ - pos_ < len || std::memcmp(s_ + pos_, word, len) != 0) fail("invalid literal");
    pos_ += len;
  }

  Json value(int depth) {
    if (depth > 16) fail("nesting deeper than 16 levels");
    skip_ws();
    Json v;
    switch (peek()) {
      case '{': {
        v.kind = Json::Object;
        ++pos_;
        skip_ws();
        if (peek() == '}') {
          ++pos_;
          return v;
        }
        std::set<std::string> seen;
        for (;;) {
          skip_ws();
          if (peek() != '"') fail("expected a string key");
          std::string key = string_body();
          if (!seen.insert(key).second) fail("duplicate key \"" + key + "\"");
          skip_ws();
          expect(':');
          Json member = value(depth + 1);
          v.members.emplace_back(std::move(key), std::move(member));
          skip_ws();
          if (peek() == ',') {
            ++pos_;
            continue;
          }
          expect('}');
          return v;
        }
      }
      case '[': {
        v.kind = Json::Array;
        ++pos_;
        skip_ws();
        if (peek() == ']') {
          ++pos_;
          return v;
        }
        for (;;) {
          v.items.push_back(value(depth + 1));
          skip_ws();
          if (peek() == ',') {
            ++pos_;
            continue;
          }
          expect(']');
          return v;
        }
      }
      case '"':
        v.kind = Json::String;
        v.text = string_body();
        return v;
      case 't':
        literal("true");
        v.kind = Json::Bool;
        v.boolean = true;
        return v;
      case 'f':
        literal("false");
        v.kind = Json::Bool;
        return v;
      case 'n':
        literal("null");
        return v;
      default:
        if (peek() == '-' || (peek() >= '0' && peek() <= '9')) {
          v.kind = Json::Number;
          v.text = number();
          return v;
        }
        fail(pos_ >= n_ ? "unexpected end of header" : "unexpected character");
    }
  }

  std::string number() {
    const size_t start = pos_;
    if (peek() == '-') ++pos_;
    if (peek() == '0') {
      ++pos_;
    } else if (peek() >= '1' && peek() <= '9') {
      while (peek() >= '0' && peek() <= '9') ++pos_;
    } else {
      fail("invalid number");
    }
    if (peek() == '.') {
      ++pos_;
      if (!(peek() >= '0' && peek() <= '9')) fail("invalid number");
      while (peek() >= '0' && peek() <= '9') ++pos_;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      if (peek() == '+' || peek() == '-') ++pos_;
      if (!(peek() >= '0' && peek() <= '9')) fail("invalid number");
      while (peek() >= '0' && peek() <= '9') ++pos_;
    }
    return std::string(s_ + start, pos_ - start);
  }

  unsigned hex4() {
    if (n_ - pos_ < 4) fail("truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<unsigned>(c - 'A' + 10);
      else fail("invalid \\u escape");
    }
    return v;
  }

  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }

  // Reads a string starting at its opening quote; validates UTF-8 of the raw bytes.
  std::string string_body() {
    expect('"');
    std::string out;
    for (;;) {
      if (pos_ >= n_) fail("unterminated string");
      const auto c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20) fail("control character in string");
      if (c == '\\') {
        ++pos_;
        if (pos_ >= n_) fail("unterminated string");
        const char e = s_[pos_++];
        switch (e) {
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case '/': out += '/'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'n': out += '\n'; break;
          case 'r': out += '\r'; break;
          case 't': out += '\t'; break;
          case 'u': {
            unsigned cp = hex4();
            if (cp >= 0xd800 && cp < 0xdc00) {
              if (n_ - pos_ < 2 || s_[pos_] != '\\' || s_[pos_ + 1] != 'u') fail("unpaired surrogate");
              pos_ += 2;
              const unsigned lo = hex4();
              if (lo < 0xdc00 || lo >= 0xe000) fail("unpaired surrogate");
              cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp < 0xe000) {
              fail("unpaired surrogate");
            }
            append_utf8(out, cp);
            break;
          }
          default: fail("invalid escape");
        }
        continue;
      }
      // Raw byte: validate a UTF-8 sequence.
      size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
      if (len == 0 || n_ - pos_ < len) fail("invalid UTF-8");
      for (size_t i = 1; i < len; ++i)
        if ((static_cast<unsigned char>(s_[pos_ + i]) >> 6) != 0x2) fail("invalid UTF-8");
      out.append(s_ + pos_, len);
      pos_ += len;
    }
  }

  const char* s_;
  size_t n_;
  const std::string& label_;
  size_t pos_ = 0;
};

// Parses a JSON number that must be a non-negative integer fitting in 2^53 (exact in JS too).
bool json_uint(const Json& v, uint64_t* out) {
  if (v.kind != Json::Number || v.text.empty() || v.text[0] == '-') return false;
  uint64_t x = 0;
  for (char c : v.text) {
    if (c < '0' || c > '9') return false;  // fractions and exponents are not integers here
    x = x * 10 + static_cast<uint64_t>(c - '0');
    if (x > (uint64_t{1} << 53)) return false;
  }
  *out = x;
  return true;
}

void json_escape(std::string& out, const std::string& s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// reading

// Upper bound on the header: real headers are kilobytes; this stops a corrupt length from
// asking for gigabytes before the bounds check against the file size.
constexpr uint64_t kMaxHeader = uint64_t{100} << 20;

SafetensorsFile SafetensorsFile::read(const std::string& path) {
  return parse(read_file_bytes(path), path);
}

SafetensorsFile SafetensorsFile::parse(std::vector<uint8_t> bytes, const std::string& label) {
  SafetensorsFile f;
  f.label_ = label;
  const char* L = label.c_str();
  CFP_CHECK(bytes.size() >= 8, "%s: not a safetensors file: %zu bytes, expected at least the 8-byte header length (truncated?)", L, bytes.size());
  const uint64_t n = read_le64(bytes.data());
  CFP_CHECK(n >= 2 && n <= kMaxHeader, "%s: not a safetensors file: header length %llu is out of range (2..%llu)", L,
            static_cast<unsigned long long>(n), static_cast<unsigned long long>(kMaxHeader));
  CFP_CHECK(n <= bytes.size() - 8, "%s: truncated safetensors file: header says %llu header bytes but the file has only %zu bytes in total", L,
            static_cast<unsigned long long>(n), bytes.size());
  f.header_len_ = static_cast<size_t>(n);
  f.data_start_ = 8 + f.header_len_;
  const char* hdr = reinterpret_cast<const char*>(bytes.data() + 8);
  CFP_CHECK(hdr[0] == '{', "%s: corrupt safetensors header: it must start with '{'", L);
  // Trailing spaces are padding; JsonReader's whitespace skipping accepts them.
  Json doc = JsonReader(hdr, f.header_len_, label).document();
  CFP_CHECK(doc.kind == Json::Object, "%s: corrupt safetensors header: the header must be a JSON object", L);

  const size_t data_size = bytes.size() - f.data_start_;
  for (auto& [key, v] : doc.members) {
    if (key == "__metadata__") {
      CFP_CHECK(v.kind == Json::Object, "%s: __metadata__ must be an object of strings", L);
      for (auto& [mk, mv] : v.members) {
        CFP_CHECK(mv.kind == Json::String, "%s: __metadata__[\"%s\"] must be a string", L, mk.c_str());
        f.metadata_[mk] = mv.text;
      }
      continue;
    }
    const char* K = key.c_str();
    CFP_CHECK(!key.empty(), "%s: a tensor has an empty name", L);
    CFP_CHECK(v.kind == Json::Object, "%s: tensor \"%s\": expected an object with dtype, shape and data_offsets", L, K);
    const Json* dtype = nullptr;
    const Json* shape = nullptr;
    const Json* offsets = nullptr;
    for (auto& [fk, fv] : v.members) {
      if (fk == "dtype") dtype = &fv;
      else if (fk == "shape") shape = &fv;
      else if (fk == "data_offsets") offsets = &fv;
      else CFP_THROW("%s: tensor \"%s\": unknown field \"%s\" (expected dtype, shape, data_offsets)", L, K, fk.c_str());
    }
    CFP_CHECK(dtype && shape && offsets, "%s: tensor \"%s\": missing %s", L, K, !dtype ? "dtype" : !shape ? "shape" : "data_offsets");
    TensorInfo t;
    t.name = key;
    CFP_CHECK(dtype->kind == Json::String, "%s: tensor \"%s\": dtype must be a string", L, K);
    CFP_CHECK(parse_dtype(dtype->text, &t.dtype), "%s: tensor \"%s\": unsupported dtype \"%s\" (supported: F32, F16, BF16, F64, I64, I32, U8, U64)", L, K,
              dtype->text.c_str());
    CFP_CHECK(shape->kind == Json::Array, "%s: tensor \"%s\": shape must be an array of non-negative integers", L, K);
    CFP_CHECK(shape->items.size() <= 8, "%s: tensor \"%s\": %zu dimensions, at most 8 supported", L, K, shape->items.size());
    for (const Json& d : shape->items) {
      uint64_t x;
      CFP_CHECK(json_uint(d, &x), "%s: tensor \"%s\": shape must be an array of non-negative integers", L, K);
      t.shape.push_back(static_cast<int64_t>(x));
    }
    uint64_t b, e;
    CFP_CHECK(offsets->kind == Json::Array && offsets->items.size() == 2 && json_uint(offsets->items[0], &b) && json_uint(offsets->items[1], &e),
              "%s: tensor \"%s\": data_offsets must be [begin, end] integers", L, K);
    CFP_CHECK(b <= e, "%s: tensor \"%s\": data_offsets [%llu, %llu] end before begin", L, K, static_cast<unsigned long long>(b),
              static_cast<unsigned long long>(e));
    CFP_CHECK(e <= data_size, "%s: truncated safetensors file: tensor \"%s\" ends at data byte %llu but the data section has only %zu bytes", L, K,
              static_cast<unsigned long long>(e), data_size);
    t.begin = static_cast<size_t>(b);
    t.end = static_cast<size_t>(e);
    size_t numel;
    try {
      numel = t.numel();
    } catch (const Error&) {
      CFP_THROW("%s: tensor \"%s\": shape %s overflows", L, K, shape_string(t.shape).c_str());
    }
    const size_t esize = dtype_size(t.dtype);
    CFP_CHECK(numel <= std::numeric_limits<size_t>::max() / esize && numel * esize == t.end - t.begin,
              "%s: tensor \"%s\": %s %s needs %zu bytes but data_offsets [%zu, %zu] span %zu", L, K, dtype_name(t.dtype),
              shape_string(t.shape).c_str(), numel * esize, t.begin, t.end, t.end - t.begin);
    f.tensors_.push_back(std::move(t));
  }

  // The tensors must tile the data section exactly: no overlaps, no holes, nothing after.
  std::stable_sort(f.tensors_.begin(), f.tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  size_t cursor = 0;
  for (const TensorInfo& t : f.tensors_) {
    CFP_CHECK(t.begin >= cursor, "%s: tensor \"%s\" overlaps the previous tensor (data_offsets [%zu, %zu], previous ends at %zu)", L, t.name.c_str(),
              t.begin, t.end, cursor);
    CFP_CHECK(t.begin == cursor, "%s: hole in the data section before tensor \"%s\" (bytes %zu..%zu belong to no tensor)", L, t.name.c_str(), cursor,
              t.begin);
    cursor = t.end;
  }
  CFP_CHECK(cursor == data_size, "%s: %zu bytes after the last tensor belong to no tensor (corrupt or appended file)", L, data_size - cursor);
  for (size_t i = 0; i < f.tensors_.size(); ++i) f.index_[f.tensors_[i].name] = i;
  f.bytes_ = std::move(bytes);
  return f;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& SafetensorsFile::get(const std::string& name) const {
  const TensorInfo* t = find(name);
  CFP_CHECK(t != nullptr, "%s: no tensor named \"%s\" (the file has %zu tensors)", label_.c_str(), name.c_str(), tensors_.size());
  return *t;
}

std::string SafetensorsFile::header_json() const {
  std::string s(reinterpret_cast<const char*>(bytes_.data() + 8), header_len_);
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

std::vector<float> SafetensorsFile::to_f32(const TensorInfo& t) const {
  const size_t n = t.numel();
  std::vector<float> out(n);
  const uint8_t* p = data(t);
  switch (t.dtype) {
    case DType::F32: std::memcpy(out.data(), p, n * 4); break;
    case DType::F16:
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = t.dtype == DType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
      }
      break;
    case DType::F64:
      for (size_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, p + 8 * i, 8);
        out[i] = static_cast<float>(d);
      }
      break;
    default: CFP_THROW("%s: tensor \"%s\" has dtype %s, expected a floating-point dtype", label_.c_str(), t.name.c_str(), dtype_name(t.dtype));
  }
  return out;
}

void SafetensorsFile::read_f32(const std::string& name, const std::vector<int64_t>& expected_shape, float* dst) const {
  const TensorInfo& t = get(name);
  CFP_CHECK(t.shape == expected_shape, "%s: tensor \"%s\" has shape %s, expected %s", label_.c_str(), name.c_str(), shape_string(t.shape).c_str(),
            shape_string(expected_shape).c_str());
  std::vector<float> v = to_f32(t);
  std::memcpy(dst, v.data(), v.size() * sizeof(float));
}

// ---------------------------------------------------------------------------------------------
// writing

std::vector<uint8_t> serialize_safetensors(const std::vector<TensorRef>& tensors, const Metadata& metadata) {
  std::string header = "{";
  bool first = true;
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    for (auto it = metadata.begin(); it != metadata.end(); ++it) {
      if (it != metadata.begin()) header += ',';
      json_escape(header, it->first);
      header += ':';
      json_escape(header, it->second);
    }
    header += '}';
    first = false;
  }
  std::set<std::string> names;
  size_t offset = 0;
  std::vector<size_t> sizes;
  for (const TensorRef& t : tensors) {
    CFP_CHECK(!t.name.empty(), "a tensor to write has an empty name");
    CFP_CHECK(t.name != "__metadata__", "\"__metadata__\" cannot be a tensor name");
    CFP_CHECK(names.insert(t.name).second, "duplicate tensor name \"%s\"", t.name.c_str());
    const size_t bytes = checked_numel(t.shape) * dtype_size(t.dtype);
    CFP_CHECK(t.data != nullptr || bytes == 0, "tensor \"%s\" has no data", t.name.c_str());
    if (!first) header += ',';
    first = false;
    json_escape(header, t.name);
    header += ":{\"dtype\":\"";
    header += dtype_name(t.dtype);
    header += "\",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i) {
      if (i) header += ',';
      header += std::to_string(t.shape[i]);
    }
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + bytes) + "]}";
    offset += bytes;
    sizes.push_back(bytes);
  }
  header += '}';
  while (header.size() % 8 != 0) header += ' ';  // data starts 8-byte aligned

  std::vector<uint8_t> out(8 + header.size() + offset);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(out.data() + 8, header.data(), header.size());
  uint8_t* p = out.data() + 8 + header.size();
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (sizes[i]) std::memcpy(p, tensors[i].data, sizes[i]);
    p += sizes[i];
  }
  return out;
}

namespace {
std::string errno_text() { return std::strerror(errno); }
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};
}  // namespace

void write_file_atomic(const std::string& path, const uint8_t* bytes, size_t size) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  // Unique per process and thread, so concurrent writers of different files never collide.
  static std::atomic<uint64_t> counter{0};
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  {
    Fd f;
    f.fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CFP_CHECK(f.fd >= 0, "cannot create %s: %s", tmp.c_str(), errno_text().c_str());
    size_t done = 0;
    while (done < size) {
      const ssize_t w = ::write(f.fd, bytes + done, size - done);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        const std::string why = errno_text();
        ::unlink(tmp.c_str());
        CFP_THROW("cannot write %s: %s", tmp.c_str(), why.c_str());
      }
      done += static_cast<size_t>(w);
    }
    if (::fsync(f.fd) != 0) {
      const std::string why = errno_text();
      ::unlink(tmp.c_str());
      CFP_THROW("cannot fsync %s: %s", tmp.c_str(), why.c_str());
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = errno_text();
    ::unlink(tmp.c_str());
    CFP_THROW("cannot rename %s to %s: %s", tmp.c_str(), path.c_str(), why.c_str());
  }
  Fd d;
  d.fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  CFP_CHECK(d.fd >= 0, "cannot open directory %s to sync it: %s", dir.c_str(), errno_text().c_str());
  CFP_CHECK(::fsync(d.fd) == 0, "cannot fsync directory %s: %s", dir.c_str(), errno_text().c_str());
}

void write_safetensors(const std::string& path, const std::vector<TensorRef>& tensors, const Metadata& metadata) {
  const std::vector<uint8_t> bytes = serialize_safetensors(tensors, metadata);
  write_file_atomic(path, bytes.data(), bytes.size());
}

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  Fd f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  CFP_CHECK(f.fd >= 0, "cannot open %s: %s", path.c_str(), errno_text().c_str());
  struct stat st;
  CFP_CHECK(::fstat(f.fd, &st) == 0, "cannot stat %s: %s", path.c_str(), errno_text().c_str());
  CFP_CHECK(S_ISREG(st.st_mode), "%s is not a regular file", path.c_str());
  std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t r = ::read(f.fd, bytes.data() + done, bytes.size() - done);
    if (r < 0 && errno == EINTR) continue;
    CFP_CHECK(r >= 0, "cannot read %s: %s", path.c_str(), errno_text().c_str());
    if (r == 0) break;  // the file shrank while we read it
    done += static_cast<size_t>(r);
  }
  bytes.resize(done);
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// XXH64 (Yann Collet's xxHash, 64-bit variant), written from its published description.

namespace {
constexpr uint64_t P1 = 0x9E3779B185EBCA87ull, P2 = 0xC2B2AE3D27D4EB4Full, P3 = 0x165667B19E3779F9ull, P4 = 0x85EBCA77C2B2AE63ull,
                   P5 = 0x27D4EB2F165667C5ull;
inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
inline uint64_t load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;  // x86-64 is little-endian, as the format requires
}
inline uint32_t load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t round64(uint64_t acc, uint64_t input) { return rotl(acc + input * P2, 31) * P1; }
inline uint64_t merge64(uint64_t acc, uint64_t v) { return (acc ^ round64(0, v)) * P1 + P4; }
}  // namespace

uint64_t xxhash64(const void* data, size_t size, uint64_t seed) {
  const auto* p = static_cast<const uint8_t*>(data);
  const uint8_t* end = p + size;
  uint64_t h;
  if (size >= 32) {
    uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
    const uint8_t* limit = end - 32;
    do {
      v1 = round64(v1, load64(p));
      v2 = round64(v2, load64(p + 8));
      v3 = round64(v3, load64(p + 16));
      v4 = round64(v4, load64(p + 24));
      p += 32;
    } while (p <= limit);
    h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
    h = merge64(h, v1);
    h = merge64(h, v2);
    h = merge64(h, v3);
    h = merge64(h, v4);
  } else {
    h = seed + P5;
  }
  h += static_cast<uint64_t>(size);
  while (end - p >= 8) {
    h ^= round64(0, load64(p));
    h = rotl(h, 27) * P1 + P4;
    p += 8;
  }
  if (end - p >= 4) {
    h ^= static_cast<uint64_t>(load32(p)) * P1;
    h = rotl(h, 23) * P2 + P3;
    p += 4;
  }
  while (p < end) {
    h ^= static_cast<uint64_t>(*p) * P5;
    h = rotl(h, 11) * P1;
    ++p;
  }
  h ^= h >> 33;
  h *= P2;
  h ^= h >> 29;
  h *= P3;
  h ^= h >> 32;
  return h;
}

}  // namespace cfp
