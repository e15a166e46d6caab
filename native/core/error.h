// Errors of the native engine: one exception type carrying the message and the
// source location, so the binding can turn it into a JS exception "msg (file:line)".
// Never abort()/assert() on user input; throw through CFP_CHECK instead.
#pragma once
#include <cstdarg>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace cfp {

class Error : public std::runtime_error {
 public:
  Error(std::string message, const char* file, int line)
      : std::runtime_error(message + " (" + file + ":" + std::to_string(line) + ")"),
        message_(std::move(message)), file_(file), line_(line) {}
  const std::string& message() const { return message_; }  // without the location
  const char* file() const { return file_; }
  int line() const { return line_; }

 private:
  std::string message_;
  const char* file_;
  int line_;
};

namespace detail {
// printf-style formatting into a std::string (a plain message works too).
inline std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
inline std::string format(const char* fmt, ...) {
  char small[512];
  va_list args;
  va_start(args, fmt);
  int n = std::vsnprintf(small, sizeof small, fmt, args);
  va_end(args);
  if (n < 0) return fmt;
  if (static_cast<size_t>(n) < sizeof small) return std::string(small, static_cast<size_t>(n));
  std::string big(static_cast<size_t>(n) + 1, '\0');
  va_start(args, fmt);
  std::vsnprintf(big.data(), big.size(), fmt, args);
  va_end(args);
  big.resize(static_cast<size_t>(n));
  return big;
}
}  // namespace detail

}  // namespace cfp

// Throw a cfp::Error with the current file:line. Usage: CFP_THROW("bad shape %d", n);
#define CFP_THROW(...) throw ::cfp::Error(::cfp::detail::format(__VA_ARGS__), __FILE__, __LINE__)

// Check a condition; on failure throw a cfp::Error. Usage: CFP_CHECK(n > 0, "n must be positive, got %d", n);
#define CFP_CHECK(cond, ...)          \
  do {                                \
    if (!(cond)) CFP_THROW(__VA_ARGS__); \
  } while (0)
