// libFuzzer target for the state envelope (src/ipc/state_envelope.h): a successor opens
// whatever bytes the supervisor hands it, so open_envelope() must be safe on any input.
//
// Properties checked beyond "no crash, no sanitizer report":
//   - an opened payload lies inside the input, right after the header;
//   - re-sealing an opened payload with its version and opening that again gives the same
//     version and payload (seal and open agree);
//   - sealing the raw input as a payload always opens again to exactly the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

#include "ipc/state_envelope.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data), size);
  using ferry::ipc::kEnvelopeHeaderSize;

  // The reader's highest version comes from the input too, so "too new" is reachable.
  const uint32_t max_version = size > 0 ? data[size - 1] % 4 : 0;
  auto opened = ferry::ipc::open_envelope(input, max_version);
  if (opened.ok()) {
    check(opened->version <= max_version);
    check(opened->payload.data() == input.data() + kEnvelopeHeaderSize);
    check(opened->payload.size() == size - kEnvelopeHeaderSize);
    auto resealed = ferry::ipc::seal(opened->payload, opened->version);
    auto again = ferry::ipc::open_envelope(resealed, opened->version);
    check(again.ok());
    check(again->version == opened->version);
    check(again->payload.size() == opened->payload.size());
    check(again->payload.empty() ||
          std::memcmp(again->payload.data(), opened->payload.data(), again->payload.size()) == 0);
  } else {
    check(!opened.error().message.empty());
  }

  auto sealed = ferry::ipc::seal(input, 1);
  auto round = ferry::ipc::open_envelope(sealed, 1);
  check(round.ok());
  check(round->payload.size() == size);
  check(size == 0 || std::memcmp(round->payload.data(), data, size) == 0);
  return 0;
}
