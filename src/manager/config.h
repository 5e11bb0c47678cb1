// ManagerConfig: ferry-snapshotter's configuration, read from TOML with nydus-snapshotter's key
// names where they exist.
//
//   version = 1                      # required when a file is given; only 1 is understood
//   root = "/var/lib/ferry"          # records, supervisor sockets, daemon sockets, logs
//   daemon_mode = "dedicated"        # "dedicated" (one daemon per mount) | "shared"
//   address = "/run/ferry/ferry-grpc.sock"  # containerd's snapshots API (gRPC, unix socket)
//   [daemon]
//   nydusd_path = ""                 # ferryd binary; empty: `ferryd` next to ferry-snapshotter
//   recover_policy = "failover"      # "none" | "restart" | "failover"
//   failover_policy = "resend"       # "none" | "resend" (ferryd --failover-policy)
//   threads_number = 4               # ferryd --thread-num, 1..256
//   fs_driver = "fusedev"            # only "fusedev"
//   recover_attempts = 3             # attempts per death before giving up, 1..100
//   hot_standby = true               # failover: keep one pre-started successor per daemon,
//                                    # waiting in INIT, so a crash costs no process start-up
//   [system]
//   enable = true                    # serve the system API
//   address = "/run/ferry/system.sock"   # unix socket path (absolute)
//   [log]
//   level = "info"                   # trace|debug|info|warn|error|off
//   dir = ""                         # empty: <root>/logs
//   [metrics]
//   address = ""                     # optional "127.0.0.1:PORT" TCP listener for GET /metrics
//   [remote]                         # Ferry images pulled lazily (docs/containerd.md)
//   auth_file = "/root/.docker/config.json"  # docker config.json `auths`; empty: anonymous
//   insecure_registries = []         # "HOST[:PORT]" reached over plain http
//
// Errors: an unknown key (at any level), a value of the wrong type, an impossible value (a
// relative path, an unknown policy, a thread count of 0, a non-loopback metrics address...)
// is refused with EINVAL and a message naming the key ("[daemon] recover_policy: expected one
// of none, restart, failover, got \"sometimes\""). Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace ferry::manager {

enum class DaemonMode { kDedicated, kShared };
enum class RecoverPolicy { kNone, kRestart, kFailover };

std::string_view to_string(DaemonMode mode);
std::string_view to_string(RecoverPolicy policy);
Result<RecoverPolicy> parse_recover_policy(std::string_view text);

struct ManagerConfig {
  int version = 1;
  std::string root = "/var/lib/ferry";
  DaemonMode daemon_mode = DaemonMode::kDedicated;
  std::string address = "/run/ferry/ferry-grpc.sock";  // the containerd snapshotter's socket
  struct Daemon {
    std::string nydusd_path;  // empty: resolved by the caller (next to its own binary)
    RecoverPolicy recover_policy = RecoverPolicy::kFailover;
    std::string failover_policy = "resend";
    unsigned threads_number = 4;
    std::string fs_driver = "fusedev";
    unsigned recover_attempts = 3;
    bool hot_standby = true;
  } daemon;
  struct System {
    bool enable = true;
    std::string address = "/run/ferry/system.sock";
  } system;
  struct Log {
    std::string level = "info";
    std::string dir;  // empty: <root>/logs
  } log;
  struct Metrics {
    std::string address;  // empty: no TCP listener
  } metrics;
  struct Remote {
    std::string auth_file = "/root/.docker/config.json";  // a missing file means no credentials
    std::vector<std::string> insecure_registries;         // hosts spoken to over plain http
  } remote;

  // Derived paths, all under root.
  [[nodiscard]] std::string db_path() const { return root + "/ferry.db"; }
  [[nodiscard]] std::string supervisor_dir() const { return root + "/supervisor"; }
  [[nodiscard]] std::string daemons_dir() const { return root + "/daemons"; }  // api sockets
  [[nodiscard]] std::string shared_mnt() const { return root + "/mnt"; }       // shared daemon's FUSE root
  [[nodiscard]] std::string snapshots_dir() const { return root + "/snapshots"; }  // containerd snapshots
  [[nodiscard]] std::string cache_dir() const { return root + "/cache"; }  // ferryd blob cache
  [[nodiscard]] std::string log_dir() const { return log.dir.empty() ? root + "/logs" : log.dir; }
};

// Parses TOML text. `origin` names it in error messages (a file path, "<embedded>").
Result<ManagerConfig> parse_config(std::string_view toml_text, std::string_view origin);
// Reads and parses a file (ENOENT/EACCES name the path).
Result<ManagerConfig> load_config(const std::string& path);
// Checks a config built in code or after command-line overrides (same rules as parsing).
Status validate(const ManagerConfig& config);
// The embedded defaults as a commented TOML document (installed as the example config; parsing
// it gives ManagerConfig{}).
std::string default_config_toml();

}  // namespace ferry::manager
