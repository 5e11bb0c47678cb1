// SavedState: everything a successor ferryd needs to serve an existing FUSE connection, and
// nothing it can derive: the negotiated FUSE_INIT parameters, the attached images with their
// node-id slots, the failover policy, and who saved it. Encoded as protobuf (saved_state.proto)
// inside the ipc state envelope (magic, version, checksum).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "fuse/abi/init_params.h"

namespace ferry::daemon {

struct SavedImage {
  uint32_t slot = 0;
  std::string name;
  std::string source;
  std::string config;
  uint64_t mounted_time = 0;
  bool detached = false;
  friend bool operator==(const SavedImage&, const SavedImage&) = default;
};

struct SavedState {
  std::string daemon_id;
  std::string mountpoint;
  fuse::FuseInitParams fuse;
  std::vector<SavedImage> images;
  uint32_t next_slot = 1;
  std::string failover_policy = "resend";
  pid_t pid = 0;
  uint64_t pid_start_time = 0;
  std::string version;
  uint64_t saved_at_unix_ms = 0;
  friend bool operator==(const SavedState&, const SavedState&) = default;
};

// The envelope format version this build writes, and the newest it reads.
inline constexpr uint32_t kStateFormatVersion = 1;

// Sealed bytes: envelope + protobuf.
std::vector<std::byte> encode_state(const SavedState& state);
// Verifies the envelope and decodes; errors name the reason (foreign, newer, corrupt, ...).
Result<SavedState> decode_state(std::span<const std::byte> bytes);

}  // namespace ferry::daemon
