// The versioned envelope around a daemon's handed-over state.
//
// The supervisor framing (supervisor_wire.h) carries opaque bytes; a successor must be able
// to tell "this is Ferry state of a version I understand, intact" from everything else before
// it adopts a live FUSE connection on the strength of it. So the daemon seals its (here
// opaque) payload:
//
//   offset size  field
//        0    8  magic "FERRYST1" (the trailing 1 names THIS header layout; a new layout gets
//                a new magic, so an old reader calls it foreign instead of misreading it)
//        8    4  u32 payload format version (chosen by the daemon; compared with what the
//                reader understands)
//       12    4  u32 flags, reserved: written 0, returned to the caller, not interpreted here
//       16    8  u64 payload length
//       24    4  u32 CRC-32C of the payload, standard form (register seeded with ~0, result
//                inverted: what crc32c libraries return; "123456789" -> 0xE3069283)
//       28    -  payload
//
// All integers little-endian. open_envelope() checks everything with bounds checks only
// (no UB on any input; fuzzed by fuzz/state_envelope_fuzz.cc) and returns a view into the
// input, so the input must outlive the result. Each failure has its own errno code so that a
// caller can act on it without parsing the message:
//
//   code                     meaning                                    what to do
//   kEnvelopeTruncated       shorter than the 28-byte header            corrupt / cut off
//   kEnvelopeForeign         bad magic (e.g. a Nydus state)             not ours: do not adopt
//   kEnvelopeTooNew          version > max_supported_version            newer daemon saved it:
//                                                                       hand it to one as new
//   kEnvelopeLengthMismatch  header length != bytes present             cut off or trailing junk
//   kEnvelopeChecksum        CRC-32C mismatch                           corrupt
//
// Thread-safety: pure functions.
#pragma once

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/result.h"

namespace ferry::ipc {

inline constexpr std::array<char, 8> kEnvelopeMagic = {'F', 'E', 'R', 'R', 'Y', 'S', 'T', '1'};
inline constexpr size_t kEnvelopeHeaderSize = 28;

inline constexpr int kEnvelopeTruncated = ENODATA;
inline constexpr int kEnvelopeForeign = EMEDIUMTYPE;
inline constexpr int kEnvelopeTooNew = EPROTONOSUPPORT;
inline constexpr int kEnvelopeLengthMismatch = EMSGSIZE;
inline constexpr int kEnvelopeChecksum = EBADMSG;

struct OpenedEnvelope {
  uint32_t version = 0;
  uint32_t flags = 0;
  std::span<const std::byte> payload;  // points into the opened bytes
};

// Header + payload, flags 0.
std::vector<std::byte> seal(std::span<const std::byte> payload, uint32_t version);

// Checks and opens an envelope; see the table above for the errors.
Result<OpenedEnvelope> open_envelope(std::span<const std::byte> bytes, uint32_t max_supported_version);

// Standard CRC-32C of `data` (as stored in the header).
uint32_t envelope_crc32c(std::span<const std::byte> data);

}  // namespace ferry::ipc
