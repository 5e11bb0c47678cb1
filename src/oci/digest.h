// Digest: a content address "sha256:<64 lowercase hex>", the only algorithm Ferry accepts,
// and Sha256: an incremental hasher (OpenSSL libcrypto) for streaming blobs.
//
// A Digest is always valid once made (parse() is the only way from text), so code holding one
// never re-checks it. Sha256 is a value owned by one thread at a time.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "common/result.h"

namespace ferry::oci {

class Digest {
 public:
  Digest() = default;  // empty: "no digest" (descriptor not yet filled); valid() is false
  // Accepts exactly "sha256:" + 64 lowercase hex digits; EINVAL naming the text otherwise.
  static Result<Digest> parse(std::string_view text);
  // sha256 of `bytes`.
  static Digest of(std::span<const std::byte> bytes);
  static Digest of(std::string_view bytes);
  // From a raw 32-byte sha256 value.
  static Digest from_raw(const std::array<uint8_t, 32>& raw);

  [[nodiscard]] bool valid() const { return !text_.empty(); }
  [[nodiscard]] const std::string& str() const { return text_; }  // "sha256:..."
  [[nodiscard]] std::string_view hex() const { return std::string_view(text_).substr(7); }
  bool operator==(const Digest&) const = default;
  auto operator<=>(const Digest&) const = default;

 private:
  explicit Digest(std::string text) : text_(std::move(text)) {}
  std::string text_;
};

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, size_t size);
  // The digest of everything updated so far; the hasher is reset afterwards.
  Digest finish();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// A digest mismatch as an Error (EBADMSG): "<what>: digest mismatch: expected X, got Y".
Error digest_mismatch(const std::string& what, const Digest& expected, const Digest& actual);

}  // namespace ferry::oci
