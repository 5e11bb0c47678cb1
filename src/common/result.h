// Result<T>: a value or an Error, the way every module reports failure across its boundary.
//
// An Error carries an errno-style code (what a FUSE reply or an exit status needs) and a
// message a person can act on (what a log line or an HTTP answer needs). No exceptions cross
// module boundaries.
#pragma once

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

namespace ferry {

struct Error {
  int code = EIO;  // errno value
  std::string message;

  // Prefixes the message with context, keeping the code: "opening image: <message>".
  [[nodiscard]] Error context(const std::string& what) const& { return {code, what + ": " + message}; }
  [[nodiscard]] Error context(const std::string& what) && { return {code, what + ": " + std::move(message)}; }
};

// An Error from the current errno: "<what>: <strerror(errno)>".
Error errno_error(const std::string& what);
Error errno_error(int err, const std::string& what);

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  [[nodiscard]] bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success or an Error.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT(google-explicit-constructor)
  [[nodiscard]] bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const& { return error_; }
  Error&& error() && { return std::move(error_); }

 private:
  Error error_;
  bool ok_ = true;
};

inline Status ok_status() {
  return {};
}

}  // namespace ferry

// Propagates a failed Result/Status out of the enclosing function.
#define FERRY_TRY(expr)                                             \
  do {                                                              \
    auto&& ferry_try_r_ = (expr);                                   \
    if (!ferry_try_r_.ok()) return std::move(ferry_try_r_).error(); \
  } while (0)

#define FERRY_CONCAT_INNER(a, b) a##b
#define FERRY_CONCAT(a, b) FERRY_CONCAT_INNER(a, b)
// Declares `decl` from the value of a Result, or returns its error.
#define FERRY_ASSIGN(decl, expr) FERRY_ASSIGN_IMPL(FERRY_CONCAT(ferry_assign_r_, __LINE__), decl, expr)
#define FERRY_ASSIGN_IMPL(tmp, decl, expr)      \
  auto tmp = (expr);                            \
  if (!tmp.ok()) return std::move(tmp).error(); \
  decl = std::move(tmp).value()
