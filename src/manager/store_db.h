// The manager database's plumbing, shared by the files that implement ManagerStore (store.cc:
// daemons, events, settings; snapshot_records.cc: containerd snapshots): the connection, statements
// reset after each use, transactions that roll back unless committed. Private to src/manager.
//
// Thread-safety: Impl::mu guards the connection; every ManagerStore method holds it throughout.
#pragma once

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "common/result.h"
#include "manager/store.h"

namespace ferry::manager {

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using Db = std::unique_ptr<sqlite3, DbCloser>;

struct StmtFinalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

inline int errno_for(int sqlite_code) {
  switch (sqlite_code & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return EBUSY;
    case SQLITE_CONSTRAINT:
      return EEXIST;
    case SQLITE_FULL:
      return ENOSPC;
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return EACCES;
    case SQLITE_NOMEM:
      return ENOMEM;
    case SQLITE_TOOBIG:
      return E2BIG;
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
    case SQLITE_SCHEMA:
      return EPROTO;
    default:
      return EIO;
  }
}

// One statement, reset and unbound when the use ends so the next use starts clean and no read
// statement keeps a snapshot open.
class StmtUse {
 public:
  explicit StmtUse(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~StmtUse() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  StmtUse(const StmtUse&) = delete;
  StmtUse& operator=(const StmtUse&) = delete;

  StmtUse& bind(int i, std::string_view text) {
    if (rc_ == SQLITE_OK) {
      // SQLITE_TRANSIENT: sqlite copies, so a temporary string_view is safe.
      // A default string_view has a null data(), which sqlite would bind as NULL, not ''.
      const char* data = text.data() != nullptr ? text.data() : "";
      rc_ = sqlite3_bind_text64(stmt_, i, data, text.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
    }
    return *this;
  }
  StmtUse& bind(int i, int64_t v) {
    if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  StmtUse& bind(int i, double v) {
    if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_double(stmt_, i, v);
    return *this;
  }
  [[nodiscard]] int bind_status() const { return rc_; }

  int step() { return sqlite3_step(stmt_); }

  [[nodiscard]] std::string text(int col) const {
    const auto* p = sqlite3_column_text(stmt_, col);
    int n = sqlite3_column_bytes(stmt_, col);
    return p == nullptr ? std::string()
                        : std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
  }
  [[nodiscard]] int64_t int64(int col) const { return sqlite3_column_int64(stmt_, col); }
  [[nodiscard]] double real(int col) const { return sqlite3_column_double(stmt_, col); }

 private:
  sqlite3_stmt* stmt_;
  int rc_ = SQLITE_OK;
};

struct ManagerStore::Impl {
  std::string path;
  Db db;
  mutable std::mutex mu;

  // Prepared once at open: a database whose tables do not match fails there, not later.
  StmtPtr begin_immediate, begin_read, commit, rollback;
  StmtPtr delete_mounts, delete_daemon, insert_daemon, insert_mount;
  StmtPtr select_daemons, select_mounts;
  StmtPtr insert_event, prune_events, select_events;
  StmtPtr upsert_setting, select_setting;

  [[nodiscard]] Error error(int rc, const std::string& what) const {
    std::string msg = db ? sqlite3_errmsg(db.get()) : sqlite3_errstr(rc);
    return Error{errno_for(rc), what + " in '" + path + "': " + msg};
  }

  Result<StmtPtr> prepare(const char* sql) const {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v3(db.get(), sql, -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
    StmtPtr stmt(raw);
    if (rc != SQLITE_OK) return error(rc, std::string("preparing \"") + sql + "\"");
    return stmt;
  }

  Status exec(const char* sql, const std::string& what) const {
    char* err = nullptr;
    int rc = sqlite3_exec(db.get(), sql, nullptr, nullptr, &err);
    std::string msg = err != nullptr ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    if (rc != SQLITE_OK) return Error{errno_for(rc), what + " in '" + path + "': " + msg};
    return ok_status();
  }

  // Runs a statement that returns no rows we need.
  Status run(StmtUse& use, const std::string& what) const {
    if (use.bind_status() != SQLITE_OK) return error(use.bind_status(), what);
    int rc = use.step();
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return error(rc, what);
    return ok_status();
  }

  Status run(sqlite3_stmt* stmt, const std::string& what) const {
    StmtUse use(stmt);
    return run(use, what);
  }

  Result<int64_t> pragma_int(const char* sql) const {
    FERRY_ASSIGN(StmtPtr stmt, prepare(sql));
    int rc = sqlite3_step(stmt.get());
    if (rc != SQLITE_ROW) return error(rc, std::string("running \"") + sql + "\"");
    return sqlite3_column_int64(stmt.get(), 0);
  }

  Result<std::string> pragma_text(const char* sql) const {
    FERRY_ASSIGN(StmtPtr stmt, prepare(sql));
    int rc = sqlite3_step(stmt.get());
    if (rc != SQLITE_ROW) return error(rc, std::string("running \"") + sql + "\"");
    const auto* p = sqlite3_column_text(stmt.get(), 0);
    return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p));
  }
};

// A transaction that rolls back unless committed. Writes begin IMMEDIATE so a second writer
// (another connection) waits at BEGIN under busy_timeout instead of failing mid-way.
class Transaction {
 public:
  Transaction(const ManagerStore::Impl& impl, bool write) : impl_(impl), write_(write) {}
  ~Transaction() {
    if (active_) {
      Status st = impl_.run(impl_.rollback.get(), "rolling back");
      if (!st.ok()) spdlog::warn("{}", st.error().message);
    }
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  Status begin() {
    FERRY_TRY(
        impl_.run(write_ ? impl_.begin_immediate.get() : impl_.begin_read.get(), "starting a transaction"));
    active_ = true;
    return ok_status();
  }
  Status commit() {
    FERRY_TRY(impl_.run(impl_.commit.get(), "committing"));
    active_ = false;
    return ok_status();
  }

 private:
  const ManagerStore::Impl& impl_;
  bool write_;
  bool active_ = false;
};

}  // namespace ferry::manager
