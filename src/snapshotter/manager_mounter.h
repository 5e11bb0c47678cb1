// ManagerFerryMounter: starts a Ferry image's ferryd through the DaemonManager's own mount path
// (the code behind POST /api/v1/mounts), so the daemon is recorded, failed over, kept with a hot
// standby and upgraded exactly like a mount made through the system API, and found again by
// the manager's records after a restart.
//
// The ferryd config it writes: the registry backend for the reference's host and repository
// (plain http for [remote] insecure_registries), the credentials of [remote] auth_file for that
// host, and the blob cache in <root>/cache (0700). Credentials go into that config only (the
// manager keeps it in its records and the daemon's 0600 config file), never into a message.
// Before starting the daemon it asks the registry for one blob of the image under a deadline,
// so an unreachable registry or missing blob fails the Prepare at once with a clear error.
//
// Thread-safety: as DaemonManager's; the snapshotter serialises calls per mountpoint.
#pragma once

#include <chrono>
#include <string>

#include "manager/config.h"
#include "manager/daemon_manager.h"
#include "snapshotter/ferry_mounter.h"

namespace ferry::snapshotter {

// The ferryd config JSON for `image` under `config` (credentials included: a secret). EINVAL
// naming [remote] auth_file when that file is malformed; a missing file means anonymous.
Result<std::string> ferry_daemon_config(const manager::ManagerConfig& config, const FerryImage& image);

class ManagerFerryMounter final : public FerryMounter {
 public:
  // `manager` must outlive this object.
  ManagerFerryMounter(manager::DaemonManager& manager, manager::ManagerConfig config,
                      std::chrono::milliseconds probe_deadline = std::chrono::seconds(10))
      : manager_(manager), config_(std::move(config)), probe_deadline_(probe_deadline) {}

  Status mount(const FerryImage& image) override;
  Status umount(const std::string& mountpoint) override;
  [[nodiscard]] bool mounted(const std::string& mountpoint) const override;

 private:
  Status probe(const FerryImage& image, bool plain_http) const;
  [[nodiscard]] bool insecure(const std::string& host) const;

  manager::DaemonManager& manager_;
  manager::ManagerConfig config_;
  std::chrono::milliseconds probe_deadline_;
};

}  // namespace ferry::snapshotter
