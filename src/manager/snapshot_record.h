// SnapshotRecord: what the manager's database keeps of one containerd snapshot, so that a
// restarted ferry-snapshotter answers containerd exactly as before. The kinds are containerd's
// enum values (snapshots.proto: VIEW 1, ACTIVE 2, COMMITTED 3); a snapshot's files live in
// <root>/snapshots/<id>.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace ferry::manager {

enum class SnapshotKind : int { kView = 1, kActive = 2, kCommitted = 3 };

using Labels = std::map<std::string, std::string>;

struct SnapshotRecord {
  int64_t id = 0;      // assigned by the database, never reused (AUTOINCREMENT)
  std::string key;     // the key of a view or active snapshot, the name of a committed one
  std::string parent;  // the committed parent's name; empty for none
  SnapshotKind kind = SnapshotKind::kActive;
  Labels labels;
  int64_t created_ns = 0;  // nanoseconds since the epoch
  int64_t updated_ns = 0;
  int64_t size = 0;    // committed only: bytes of its fs directory, measured at commit
  int64_t inodes = 0;  // committed only: inodes of its fs directory
};

}  // namespace ferry::manager
