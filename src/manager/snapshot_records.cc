// ManagerStore's containerd snapshots: one row per snapshot, labels as a JSON object. The rules
// containerd's metadata store enforces are checked inside the same transaction as the write, so
// two concurrent calls cannot both take a key or remove a parent under a new child.
#include <nlohmann/json.hpp>

#include "manager/store.h"
#include "manager/store_db.h"

namespace ferry::manager {
namespace {

constexpr const char* kColumns = "id, key, parent, kind, labels, created_ns, updated_ns, size, inodes";

std::string labels_to_json(const Labels& labels) {
  return nlohmann::json(labels).dump();
}

Result<Labels> labels_from_json(const std::string& text, const std::string& key) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Error{EPROTO, "snapshot '" + key + "': its labels in the database are not a JSON object"};
  }
  Labels out;
  for (const auto& [k, v] : j.items()) {
    if (!v.is_string()) return Error{EPROTO, "snapshot '" + key + "': label '" + k + "' is not a string"};
    out.emplace(k, v.get<std::string>());
  }
  return out;
}

Result<SnapshotRecord> read_row(const StmtUse& use) {
  SnapshotRecord r;
  r.id = use.int64(0);
  r.key = use.text(1);
  r.parent = use.text(2);
  int64_t kind = use.int64(3);
  if (kind < 1 || kind > 3) {
    return Error{EPROTO, "snapshot '" + r.key + "' has an unknown kind " + std::to_string(kind)};
  }
  r.kind = static_cast<SnapshotKind>(kind);
  FERRY_ASSIGN(r.labels, labels_from_json(use.text(4), r.key));
  r.created_ns = use.int64(5);
  r.updated_ns = use.int64(6);
  r.size = use.int64(7);
  r.inodes = use.int64(8);
  return r;
}

// The row of `key`, or nullopt. Runs inside the caller's transaction.
Result<std::optional<SnapshotRecord>> find(const ManagerStore::Impl& impl, std::string_view key) {
  FERRY_ASSIGN(StmtPtr stmt,
               impl.prepare((std::string("SELECT ") + kColumns + " FROM snapshots WHERE key = ?1").c_str()));
  StmtUse use(stmt.get());
  use.bind(1, key);
  const std::string what = "reading snapshot '" + std::string(key) + "'";
  if (use.bind_status() != SQLITE_OK) return impl.error(use.bind_status(), what);
  int rc = use.step();
  if (rc == SQLITE_DONE) return std::optional<SnapshotRecord>();
  if (rc != SQLITE_ROW) return impl.error(rc, what);
  FERRY_ASSIGN(SnapshotRecord r, read_row(use));
  return std::optional<SnapshotRecord>(std::move(r));
}

Result<SnapshotRecord> need(const ManagerStore::Impl& impl, std::string_view key) {
  FERRY_ASSIGN(auto found, find(impl, key));
  if (!found) return Error{ENOENT, "snapshot '" + std::string(key) + "' does not exist"};
  return std::move(*found);
}

Status write_labels(const ManagerStore::Impl& impl, const SnapshotRecord& r) {
  FERRY_ASSIGN(StmtPtr stmt, impl.prepare("UPDATE snapshots SET labels = ?2, updated_ns = ?3 WHERE id = ?1"));
  StmtUse use(stmt.get());
  use.bind(1, r.id).bind(2, labels_to_json(r.labels)).bind(3, r.updated_ns);
  return impl.run(use, "updating the labels of snapshot '" + r.key + "'");
}

}  // namespace

Result<SnapshotRecord> ManagerStore::create_snapshot(
    const SnapshotRecord& wanted, const std::function<Status(const SnapshotRecord&)>& make_files) {
  if (wanted.key.empty()) return Error{EINVAL, "a snapshot needs a key"};
  if (wanted.kind == SnapshotKind::kCommitted) {
    return Error{EINVAL, "snapshot '" + wanted.key + "': only views and active snapshots are created"};
  }
  std::lock_guard lock(impl_->mu);
  Transaction tx(*impl_, true);
  FERRY_TRY(tx.begin());
  FERRY_ASSIGN(auto existing, find(*impl_, wanted.key));
  if (existing) return Error{EEXIST, "snapshot '" + wanted.key + "' already exists"};
  if (!wanted.parent.empty()) {
    FERRY_ASSIGN(auto parent, find(*impl_, wanted.parent));
    if (!parent) return Error{ENOENT, "parent snapshot '" + wanted.parent + "' does not exist"};
    if (parent->kind != SnapshotKind::kCommitted) {
      return Error{EINVAL, "parent '" + wanted.parent + "' is not a committed snapshot"};
    }
  }
  SnapshotRecord r = wanted;
  r.size = 0;
  r.inodes = 0;
  {
    FERRY_ASSIGN(
        StmtPtr stmt,
        impl_->prepare("INSERT INTO snapshots (key, parent, kind, labels, created_ns, updated_ns, size, "
                       "inodes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, 0)"));
    StmtUse use(stmt.get());
    use.bind(1, r.key)
        .bind(2, r.parent)
        .bind(3, int64_t{static_cast<int>(r.kind)})
        .bind(4, labels_to_json(r.labels))
        .bind(5, r.created_ns)
        .bind(6, r.updated_ns);
    FERRY_TRY(impl_->run(use, "recording snapshot '" + r.key + "'"));
  }
  r.id = sqlite3_last_insert_rowid(impl_->db.get());
  FERRY_TRY(make_files(r));
  FERRY_TRY(tx.commit());
  return r;
}

Result<SnapshotRecord> ManagerStore::snapshot(std::string_view key) const {
  std::lock_guard lock(impl_->mu);
  Transaction tx(*impl_, false);
  FERRY_TRY(tx.begin());
  FERRY_ASSIGN(SnapshotRecord r, need(*impl_, key));
  FERRY_TRY(tx.commit());
  return r;
}

Result<std::vector<SnapshotRecord>> ManagerStore::snapshot_chain(std::string_view key) const {
  std::lock_guard lock(impl_->mu);
  Transaction tx(*impl_, false);
  FERRY_TRY(tx.begin());
  std::vector<SnapshotRecord> chain;
  FERRY_ASSIGN(SnapshotRecord r, need(*impl_, key));
  chain.push_back(std::move(r));
  while (!chain.back().parent.empty()) {
    // Parents cannot be removed under children, so a missing one means a damaged database; a
    // chain longer than the table means a cycle.
    if (chain.size() > 100000)
      return Error{EPROTO, "snapshot '" + std::string(key) + "': parent chain loops"};
    std::string parent = chain.back().parent;
    FERRY_ASSIGN(SnapshotRecord p, need(*impl_, parent));
    chain.push_back(std::move(p));
  }
  FERRY_TRY(tx.commit());
  return chain;
}

Result<std::vector<SnapshotRecord>> ManagerStore::snapshots() const {
  std::lock_guard lock(impl_->mu);
  Transaction tx(*impl_, false);
  FERRY_TRY(tx.begin());
  FERRY_ASSIGN(StmtPtr stmt,
               impl_->prepare((std::string("SELECT ") + kColumns + " FROM snapshots ORDER BY id").c_str()));
  StmtUse use(stmt.get());
  std::vector<SnapshotRecord> out;
  for (;;) {
    int rc = use.step();
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return impl_->error(rc, "listing snapshots");
    FERRY_ASSIGN(SnapshotRecord r, read_row(use));
    out.push_back(std::move(r));
  }
  FERRY_TRY(tx.commit());
  return out;
}

Result<SnapshotRecord> ManagerStore::commit_snapshot(std::string_view key, std::string_view name,
                                                     const Labels& labels, int64_t size, int64_t inodes,
                                                     int64_t now_ns) {
  if (name.empty()) return Error{EINVAL, "committing '" + std::string(key) + "': the name is empty"};
  std::lock_guard lock(impl_->mu);
  Transaction tx(*impl_, true);
  FERRY_TRY(tx.begin());
  FERRY_ASSIGN(SnapshotRecord r, need(*impl_, key));
  if (r.kind != SnapshotKind::kActive) {
    return Error{EPERM, "snapshot '" + r.key + "' is not active: only an active snapshot can be committed"};
  }
  FERRY_ASSIGN(auto taken, find(*impl_, name));
  if (taken) return Error{EEXIST, "snapshot '" + std::string(name) + "' already exists"};
  r.key = std::string(name);
  r.kind = SnapshotKind::kCommitted;
  r.labels = labels;
  r.updated_ns = now_ns;
  r.size = size;
  r.inodes = inodes;
  {
    FERRY_ASSIGN(StmtPtr stmt,
                 impl_->prepare("UPDATE snapshots SET key = ?2, kind = ?3, labels = ?4, updated_ns = ?5, "
                                "size = ?6, inodes = ?7 WHERE id = ?1"));
    StmtUse use(stmt.get());
    use.bind(1, r.id)
        .bind(2, r.key)
        .bind(3, int64_t{static_cast<int>(r.kind)})
        .bind(4, labels_to_json(r.labels))
        .bind(5, r.updated_ns)
        .bind(6, r.size)
        .bind(7, r.inodes);
    FERRY_TRY(impl_->run(use, "committing snapshot '" + std::string(key) + "'"));
  }
  FERRY_TRY(tx.commit());
  return r;
}

Result<SnapshotRecord> ManagerStore::remove_snapshot(std::string_view key) {
  std::lock_guard lock(impl_->mu);
  Transaction tx(*impl_, true);
  FERRY_TRY(tx.begin());
  FERRY_ASSIGN(SnapshotRecord r, need(*impl_, key));
  {
    FERRY_ASSIGN(StmtPtr stmt, impl_->prepare("SELECT key FROM snapshots WHERE parent = ?1 LIMIT 1"));
    StmtUse use(stmt.get());
    use.bind(1, key);
    int rc = use.step();
    if (rc == SQLITE_ROW) {
      return Error{ENOTEMPTY,
                   "snapshot '" + r.key + "' has children (e.g. '" + use.text(0) + "'): remove them first"};
    }
    if (rc != SQLITE_DONE) return impl_->error(rc, "looking for children of '" + r.key + "'");
  }
  {
    FERRY_ASSIGN(StmtPtr stmt, impl_->prepare("DELETE FROM snapshots WHERE id = ?1"));
    StmtUse use(stmt.get());
    use.bind(1, r.id);
    FERRY_TRY(impl_->run(use, "removing snapshot '" + r.key + "'"));
  }
  FERRY_TRY(tx.commit());
  return r;
}

Result<SnapshotRecord> ManagerStore::update_snapshot_labels(std::string_view key, const Labels& labels,
                                                            const std::vector<std::string>& paths,
                                                            int64_t now_ns) {
  std::lock_guard lock(impl_->mu);
  Transaction tx(*impl_, true);
  FERRY_TRY(tx.begin());
  FERRY_ASSIGN(SnapshotRecord r, need(*impl_, key));
  bool all = paths.empty();
  for (const std::string& p : paths) {
    if (p == "labels") all = true;
  }
  if (all) {
    r.labels = labels;
  } else {
    for (const std::string& p : paths) {
      // Validated by the caller: "labels.KEY".
      std::string label = p.substr(std::string_view("labels.").size());
      auto it = labels.find(label);
      if (it == labels.end()) {
        r.labels.erase(label);
      } else {
        r.labels[label] = it->second;
      }
    }
  }
  r.updated_ns = now_ns;
  FERRY_TRY(write_labels(*impl_, r));
  FERRY_TRY(tx.commit());
  return r;
}

}  // namespace ferry::manager
