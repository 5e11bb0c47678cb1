#include "daemon/metrics.h"

#include <linux/fuse.h>

#include <chrono>
#include <mutex>
#include <thread>

#include "imagefs/node_id.h"

namespace ferry::daemon {
namespace {

uint64_t steady_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

const char* opcode_name(uint32_t op) {
  switch (op) {
    case FUSE_LOOKUP:
      return "lookup";
    case FUSE_FORGET:
      return "forget";
    case FUSE_GETATTR:
      return "getattr";
    case FUSE_READLINK:
      return "readlink";
    case FUSE_OPEN:
      return "open";
    case FUSE_READ:
      return "read";
    case FUSE_STATFS:
      return "statfs";
    case FUSE_RELEASE:
      return "release";
    case FUSE_GETXATTR:
      return "getxattr";
    case FUSE_LISTXATTR:
      return "listxattr";
    case FUSE_FLUSH:
      return "flush";
    case FUSE_INIT:
      return "init";
    case FUSE_OPENDIR:
      return "opendir";
    case FUSE_READDIR:
      return "readdir";
    case FUSE_RELEASEDIR:
      return "releasedir";
    case FUSE_ACCESS:
      return "access";
    case FUSE_INTERRUPT:
      return "interrupt";
    case FUSE_DESTROY:
      return "destroy";
    case FUSE_BATCH_FORGET:
      return "batch_forget";
    case FUSE_READDIRPLUS:
      return "readdirplus";
    case FUSE_LSEEK:
      return "lseek";
    default:
      return nullptr;
  }
}

}  // namespace

void Counters::record(uint32_t opcode, int error, uint64_t bytes, uint64_t micros) {
  if (opcode < by_opcode.size()) {
    by_opcode[opcode].fetch_add(1, std::memory_order_relaxed);
  } else {
    other_opcodes.fetch_add(1, std::memory_order_relaxed);
  }
  if (error != 0 && error != ENOENT && error != ENODATA && error != ENOSYS) {
    errors.fetch_add(1, std::memory_order_relaxed);
  }
  if (opcode == FUSE_READ && error == 0) bytes_read.fetch_add(bytes, std::memory_order_relaxed);
  size_t b = 0;
  while (b < kBucketsUs.size() && micros > kBucketsUs[b]) ++b;
  latency[b].fetch_add(1, std::memory_order_relaxed);
}

nlohmann::json Counters::to_json() const {
  nlohmann::json ops = nlohmann::json::object();
  uint64_t total = other_opcodes.load();
  for (uint32_t op = 0; op < by_opcode.size(); ++op) {
    uint64_t n = by_opcode[op].load(std::memory_order_relaxed);
    total += n;
    if (n == 0) continue;
    const char* name = opcode_name(op);
    ops[name != nullptr ? name : "opcode_" + std::to_string(op)] = n;
  }
  nlohmann::json hist = nlohmann::json::array();
  for (size_t b = 0; b < latency.size(); ++b) {
    hist.push_back({{"le_us", b < kBucketsUs.size() ? nlohmann::json(kBucketsUs[b]) : nlohmann::json("+Inf")},
                    {"count", latency[b].load(std::memory_order_relaxed)}});
  }
  return {{"requests", total},
          {"requests_by_opcode", ops},
          {"bytes_read", bytes_read.load()},
          {"errors", errors.load()},
          {"latency_histogram", hist}};
}

DaemonMetrics::InflightSlot& DaemonMetrics::my_slot() {
  thread_local size_t index = next_thread_.fetch_add(1) % kMaxThreads;
  return inflight_[index];
}

void DaemonMetrics::on_begin(uint32_t opcode, uint64_t nodeid, uint64_t unique) {
  InflightSlot& s = my_slot();
  s.started_ns.store(steady_ns(), std::memory_order_relaxed);
  s.started_unix_s.store(static_cast<int64_t>(::time(nullptr)), std::memory_order_relaxed);
  s.nodeid.store(nodeid, std::memory_order_relaxed);
  s.opcode.store(opcode, std::memory_order_relaxed);
  uint32_t slot = nodeid == imagefs::kRootNodeId ? root_slot_.load(std::memory_order_relaxed)
                                                 : static_cast<uint32_t>(nodeid >> imagefs::kNidBits);
  s.slot.store(slot, std::memory_order_relaxed);
  s.unique.store(unique, std::memory_order_release);
  if (opcode == FUSE_READ && nodeid != 0 && nodeid == stall_node_.load(std::memory_order_relaxed)) {
    // Test-only: hold this request forever, as a daemon that dies mid-request would.
    while (true) std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

void DaemonMetrics::on_end(uint32_t opcode, int error, uint64_t bytes) {
  InflightSlot& s = my_slot();
  uint64_t micros = (steady_ns() - s.started_ns.load(std::memory_order_relaxed)) / 1000U;
  s.unique.store(0, std::memory_order_release);
  total_.record(opcode, error, bytes, micros);
  uint32_t slot = s.slot.load(std::memory_order_relaxed);
  std::shared_lock lock(images_mu_);
  auto it = images_.find(slot);
  if (it != images_.end()) it->second->record(opcode, error, bytes, micros);
}

void DaemonMetrics::add_image(uint32_t slot) {
  std::unique_lock lock(images_mu_);
  images_.try_emplace(slot, std::make_unique<Counters>());
}

void DaemonMetrics::remove_image(uint32_t slot) {
  std::unique_lock lock(images_mu_);
  images_.erase(slot);
}

nlohmann::json DaemonMetrics::image(uint32_t slot) const {
  std::shared_lock lock(images_mu_);
  auto it = images_.find(slot);
  if (it == images_.end()) return nullptr;
  return it->second->to_json();
}

nlohmann::json DaemonMetrics::inflight() const {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& s : inflight_) {
    uint64_t unique = s.unique.load(std::memory_order_acquire);
    if (unique == 0) continue;
    out.push_back({{"inode", s.nodeid.load()},
                   {"opcode", s.opcode.load()},
                   {"unique", unique},
                   {"timestamp_secs", s.started_unix_s.load()}});
  }
  return out;
}

}  // namespace ferry::daemon
