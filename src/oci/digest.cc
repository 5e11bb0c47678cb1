#include "oci/digest.h"

#include <openssl/evp.h>

#include <stdexcept>

namespace ferry::oci {

namespace {

constexpr std::string_view kPrefix = "sha256:";
constexpr char kHex[] = "0123456789abcdef";

std::string hex_of(const unsigned char* raw, size_t n) {
  std::string out(kPrefix);
  out.reserve(kPrefix.size() + 2 * n);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kHex[raw[i] >> 4]);
    out.push_back(kHex[raw[i] & 0xF]);
  }
  return out;
}

}  // namespace

struct Sha256::State {
  EVP_MD_CTX* ctx = nullptr;
  State() : ctx(EVP_MD_CTX_new()) {
    if (ctx == nullptr || EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1) {
      EVP_MD_CTX_free(ctx);
      throw std::bad_alloc();
    }
  }
  ~State() { EVP_MD_CTX_free(ctx); }
  State(const State&) = delete;
  State& operator=(const State&) = delete;
};

Sha256::Sha256() : state_(std::make_unique<State>()) {}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(const void* data, size_t size) {
  if (size != 0) EVP_DigestUpdate(state_->ctx, data, size);
}

Digest Sha256::finish() {
  unsigned char raw[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(state_->ctx, raw, &n);
  EVP_DigestInit_ex(state_->ctx, EVP_sha256(), nullptr);
  return *Digest::parse(hex_of(raw, n));
}

Result<Digest> Digest::parse(std::string_view text) {
  const auto bad = [&](const char* why) {
    std::string shown(text.substr(0, 100));
    return Error{EINVAL, "invalid digest '" + shown + "': " + why};
  };
  if (text.substr(0, kPrefix.size()) != kPrefix) {
    return bad("only sha256:<64 hex digits> is supported");
  }
  const std::string_view hex = text.substr(kPrefix.size());
  if (hex.size() != 64) return bad("expected 64 hex digits after 'sha256:'");
  for (char c : hex) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return bad("expected lowercase hex digits");
  }
  return Digest(std::string(text));
}

Digest Digest::of(std::span<const std::byte> bytes) {
  Sha256 h;
  h.update(bytes.data(), bytes.size());
  return h.finish();
}

Digest Digest::of(std::string_view bytes) {
  Sha256 h;
  h.update(bytes.data(), bytes.size());
  return h.finish();
}

Digest Digest::from_raw(const std::array<uint8_t, 32>& raw) {
  return Digest(hex_of(raw.data(), raw.size()));
}

Error digest_mismatch(const std::string& what, const Digest& expected, const Digest& actual) {
  return {EBADMSG, what + ": digest mismatch: expected " + expected.str() + ", got " + actual.str()};
}

}  // namespace ferry::oci
