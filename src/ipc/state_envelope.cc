#include "ipc/state_envelope.h"

#include <cstring>
#include <string>

#include "common/crc32c.h"
#include "common/le.h"

namespace ferry::ipc {
namespace {

constexpr size_t kVersionOffset = 8;
constexpr size_t kFlagsOffset = 12;
constexpr size_t kLengthOffset = 16;
constexpr size_t kCrcOffset = 24;
static_assert(kCrcOffset + 4 == kEnvelopeHeaderSize);

template <typename T>
void store_le(std::byte* p, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<std::byte>((v >> (8 * i)) & 0xFFU);
}

std::string hex32(uint32_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s = "0x";
  for (int shift = 28; shift >= 0; shift -= 4) s += kDigits[(v >> shift) & 0xFU];
  return s;
}

}  // namespace

uint32_t envelope_crc32c(std::span<const std::byte> data) {
  return ~crc32c_update(~uint32_t{0}, data);
}

std::vector<std::byte> seal(std::span<const std::byte> payload, uint32_t version) {
  std::vector<std::byte> out(kEnvelopeHeaderSize + payload.size());
  std::memcpy(out.data(), kEnvelopeMagic.data(), kEnvelopeMagic.size());
  store_le<uint32_t>(out.data() + kVersionOffset, version);
  store_le<uint32_t>(out.data() + kFlagsOffset, 0);
  store_le<uint64_t>(out.data() + kLengthOffset, payload.size());
  store_le<uint32_t>(out.data() + kCrcOffset, envelope_crc32c(payload));
  if (!payload.empty()) std::memcpy(out.data() + kEnvelopeHeaderSize, payload.data(), payload.size());
  return out;
}

Result<OpenedEnvelope> open_envelope(std::span<const std::byte> bytes, uint32_t max_supported_version) {
  // Magic first whenever there are enough bytes for it: a short foreign blob is "foreign",
  // which says more than "truncated".
  if (bytes.size() >= kEnvelopeMagic.size() &&
      std::memcmp(bytes.data(), kEnvelopeMagic.data(), kEnvelopeMagic.size()) != 0) {
    return Error{kEnvelopeForeign,
                 "the state is not a Ferry state envelope (bad magic; a Nydus state, or "
                 "something else entirely)"};
  }
  if (bytes.size() < kEnvelopeHeaderSize) {
    return Error{kEnvelopeTruncated, "the state is truncated: " + std::to_string(bytes.size()) +
                                         " bytes, shorter than the " + std::to_string(kEnvelopeHeaderSize) +
                                         "-byte envelope header"};
  }
  OpenedEnvelope opened;
  opened.version = load_le<uint32_t>(bytes.data() + kVersionOffset);
  opened.flags = load_le<uint32_t>(bytes.data() + kFlagsOffset);
  const uint64_t length = load_le<uint64_t>(bytes.data() + kLengthOffset);
  const uint32_t crc = load_le<uint32_t>(bytes.data() + kCrcOffset);

  if (opened.version > max_supported_version) {
    return Error{kEnvelopeTooNew,
                 "the state has format version " + std::to_string(opened.version) +
                     ", newer than the highest this binary understands (" +
                     std::to_string(max_supported_version) +
                     "); it must be handed to a daemon at least as new as the one that saved it"};
  }
  const size_t present = bytes.size() - kEnvelopeHeaderSize;
  if (length != present) {
    return Error{kEnvelopeLengthMismatch, "the state's header announces " + std::to_string(length) +
                                              " payload bytes but " + std::to_string(present) +
                                              " are present (" +
                                              (length > present ? "cut off" : "trailing bytes") + ")"};
  }
  opened.payload = bytes.subspan(kEnvelopeHeaderSize);
  const uint32_t actual = envelope_crc32c(opened.payload);
  if (actual != crc) {
    return Error{kEnvelopeChecksum,
                 "the state's payload is corrupt: CRC-32C " + hex32(actual) + ", header says " + hex32(crc)};
  }
  return opened;
}

}  // namespace ferry::ipc
