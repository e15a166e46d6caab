// A minimal check harness for the math tests (schedule, rng, optim, samplers): each test is a
// function; a failed check prints file:line and the values, and main() returns nonzero.
#pragma once
#include <cmath>
#include <cstdio>
#include <exception>
#include <functional>
#include <string>
#include <vector>

namespace cfp_test {

inline int& failures() {
  static int count = 0;
  return count;
}

inline void fail(const char* file, int line, const std::string& what) {
  ++failures();
  std::fprintf(stderr, "FAIL %s:%d: %s\n", file, line, what.c_str());
}

struct Case {
  const char* name;
  std::function<void()> run;
};

inline std::vector<Case>& cases() {
  static std::vector<Case> all;
  return all;
}

struct Register {
  Register(const char* name, std::function<void()> run) { cases().push_back({name, std::move(run)}); }
};

inline int run_all() {
  for (const Case& c : cases()) {
    const int before = failures();
    try {
      c.run();
    } catch (const std::exception& e) {
      fail(__FILE__, __LINE__, std::string("unexpected exception in ") + c.name + ": " + e.what());
    }
    std::printf("%s %s\n", failures() == before ? "ok  " : "FAIL", c.name);
  }
  std::printf("%zu cases, %d failed checks\n", cases().size(), failures());
  return failures() == 0 ? 0 : 1;
}

}  // namespace cfp_test

#define MT_CAT2(a, b) a##b
#define MT_CAT(a, b) MT_CAT2(a, b)
#define TEST_CASE(name)                                                     \
  static void name();                                                       \
  static ::cfp_test::Register MT_CAT(register_, name)(#name, &name);        \
  static void name()

#define CHECK(cond)                                                    \
  do {                                                                 \
    if (!(cond)) ::cfp_test::fail(__FILE__, __LINE__, "CHECK(" #cond ")"); \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                                           \
  do {                                                                                                  \
    const double mt_a = static_cast<double>(a), mt_b = static_cast<double>(b);                         \
    if (!(std::fabs(mt_a - mt_b) <= (tol))) {                                                          \
      char mt_buf[256];                                                                                 \
      std::snprintf(mt_buf, sizeof mt_buf, "%s = %.10g vs %s = %.10g (tol %g)", #a, mt_a, #b, mt_b,     \
                    static_cast<double>(tol));                                                          \
      ::cfp_test::fail(__FILE__, __LINE__, mt_buf);                                                     \
    }                                                                                                   \
  } while (0)

#define CHECK_THROWS(expr)                                          \
  do {                                                              \
    bool mt_threw = false;                                          \
    try {                                                           \
      (void)(expr);                                                 \
    } catch (const std::exception&) {                               \
      mt_threw = true;                                              \
    }                                                               \
    if (!mt_threw) ::cfp_test::fail(__FILE__, __LINE__, "expected a throw: " #expr); \
  } while (0)

#define TEST_MAIN() \
  int main() { return ::cfp_test::run_all(); }
