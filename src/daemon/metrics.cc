#include "daemon/metrics.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <string>

#include "imagefs/node_id.h"
#include "imagefs/image_prefetch.h"
#include "storage/registry_chunk_reader.h"

namespace ferry::daemon {
namespace {

uint64_t steady_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

// One writer per counter: a load and a store, no locked read-modify-write.
void bump(std::atomic<uint64_t>& c, uint64_t n = 1) {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

}  // namespace

void Counters::record(uint32_t opcode, int error, uint64_t data_bytes) {
  if (opcode < by_opcode.size()) {
    bump(by_opcode[opcode]);
  } else {
    bump(other_opcodes);
  }
  if (error != 0 && error != ENOENT && error != ENODATA && error != ENOSYS) bump(errors);
  if (error == 0 && data_bytes != 0) bump(bytes_read, data_bytes);
}

void Counters::record_latency(uint64_t micros) {
  size_t b = 0;
  while (b < kBucketsUs.size() && micros > kBucketsUs[b]) ++b;
  bump(latency[b]);
}

void CounterTotals::add(const Counters& c) {
  for (size_t i = 0; i < by_opcode.size(); ++i) by_opcode[i] += c.by_opcode[i].load(std::memory_order_relaxed);
  other_opcodes += c.other_opcodes.load(std::memory_order_relaxed);
  bytes_read += c.bytes_read.load(std::memory_order_relaxed);
  errors += c.errors.load(std::memory_order_relaxed);
  for (size_t i = 0; i < latency.size(); ++i) latency[i] += c.latency[i].load(std::memory_order_relaxed);
}

nlohmann::json CounterTotals::to_json() const {
  nlohmann::json ops = nlohmann::json::object();
  uint64_t total = other_opcodes;
  for (uint32_t op = 0; op < by_opcode.size(); ++op) {
    uint64_t n = by_opcode[op];
    total += n;
    if (n == 0) continue;
    std::string_view name = fuse::FuseServer::opcode_name(op);
    ops[name.empty() ? "opcode_" + std::to_string(op) : std::string(name)] = n;
  }
  nlohmann::json hist = nlohmann::json::array();
  for (size_t b = 0; b < latency.size(); ++b) {
    hist.push_back({{"le_us", b < Counters::kBucketsUs.size() ? nlohmann::json(Counters::kBucketsUs[b])
                                                              : nlohmann::json("+Inf")},
                    {"count", latency[b]}});
  }
  return {{"requests", total},
          {"requests_by_opcode", ops},
          {"bytes_read", bytes_read},
          {"errors", errors},
          {"latency_histogram", hist},
          {"latency_sample_every", DaemonMetrics::kLatencySampleEvery}};
}

nlohmann::json remote_blob_metrics() {
  using storage::RemoteFetchStats;
  nlohmann::json out = nlohmann::json::object();
  for (const auto& reader : storage::live_registry_readers()) {
    const RemoteFetchStats& st = reader->stats();
    nlohmann::json& b = out[reader->digest()];
    if (b.is_null()) {
      nlohmann::json hist = nlohmann::json::array();
      for (size_t i = 0; i < st.latency.size(); ++i) {
        hist.push_back({{"le_ms", i < RemoteFetchStats::kBucketsMs.size() ? nlohmann::json(RemoteFetchStats::kBucketsMs[i])
                                                                            : nlohmann::json("+Inf")},
                        {"count", 0}});
      }
      b = {{"source", reader->name()}, {"requests", 0}, {"bytes_fetched", 0}, {"failures", 0},
           {"latency_us_total", 0}, {"latency_us_max", 0}, {"latency_histogram", hist}};
    }
    const auto get = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    b["requests"] = b["requests"].get<uint64_t>() + get(st.requests);
    b["bytes_fetched"] = b["bytes_fetched"].get<uint64_t>() + get(st.bytes);
    b["failures"] = b["failures"].get<uint64_t>() + get(st.failures);
    b["latency_us_total"] = b["latency_us_total"].get<uint64_t>() + get(st.latency_us_total);
    b["latency_us_max"] = std::max(b["latency_us_max"].get<uint64_t>(), get(st.latency_us_max));
    for (size_t i = 0; i < st.latency.size(); ++i) {
      auto& c = b["latency_histogram"][i]["count"];
      c = c.get<uint64_t>() + get(st.latency[i]);
    }
  }
  return out;
}

nlohmann::json blob_cache_metrics() {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& cache : imagefs::live_blob_caches()) {
    const storage::BlobCacheStats s = cache->stats();
    out[cache->file().data_path()] = {{"hits", s.hits},
                                      {"misses", s.misses},
                                      {"bytes_fetched", s.bytes_fetched},
                                      {"fetch_requests", s.fetch_requests},
                                      {"chunks_present", s.chunks_present},
                                      {"chunks_total", s.chunks_total},
                                      {"corrupt_refetched", s.corrupt_refetched}};
  }
  return out;
}

nlohmann::json prefetch_metrics() {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& prefetcher : imagefs::live_prefetchers()) {
    const storage::PrefetchProgress p = prefetcher->progress();
    out.push_back({{"chunks_total", p.chunks_total},
                   {"chunks_done", p.chunks_done},
                   {"bytes_done", p.bytes_done},
                   {"pieces_failed", p.pieces_failed},
                   {"finished", p.finished},
                   {"last_error", p.last_error}});
  }
  return out;
}

// ---- the image table -----------------------------------------------------------------------

const DaemonMetrics::ImageCounters* DaemonMetrics::ImageTable::find(uint32_t slot) const {
  auto it = std::lower_bound(images.begin(), images.end(), slot,
                             [](const auto& i, uint32_t s) { return i->slot < s; });
  return it != images.end() && (*it)->slot == slot ? it->get() : nullptr;
}

DaemonMetrics::DaemonMetrics(unsigned workers)
    : workers_count_(std::clamp(workers, 1U, fuse::kMaxWorkers)),
      workers_(std::make_unique<Worker[]>(workers_count_)),
      epochs_(workers_count_),
      current_(std::make_shared<const ImageTable>()) {
  table_.store(current_.get(), std::memory_order_release);
}

void DaemonMetrics::publish_locked(ImageTable next) {
  std::shared_ptr<const ImageTable> old = std::move(current_);
  current_ = std::make_shared<const ImageTable>(std::move(next));
  table_.store(current_.get(), std::memory_order_seq_cst);
  epochs_.retire(std::move(old));
}

void DaemonMetrics::add_image(uint32_t slot) {
  std::lock_guard lock(mu_);
  if (current_->find(slot) != nullptr) return;
  auto counters = std::make_shared<ImageCounters>();
  counters->slot = slot;
  counters->per_worker = std::make_unique<Counters[]>(workers_count_);
  ImageTable next = *current_;
  auto it = std::lower_bound(next.images.begin(), next.images.end(), slot,
                             [](const auto& i, uint32_t s) { return i->slot < s; });
  next.images.insert(it, std::move(counters));
  publish_locked(std::move(next));
}

void DaemonMetrics::remove_image(uint32_t slot) {
  std::lock_guard lock(mu_);
  if (current_->find(slot) == nullptr) return;
  ImageTable next = *current_;
  std::erase_if(next.images, [slot](const auto& i) { return i->slot == slot; });
  publish_locked(std::move(next));
}

// ---- the hot path --------------------------------------------------------------------------

void DaemonMetrics::on_begin(unsigned worker, uint32_t opcode, uint64_t nodeid, uint64_t unique) {
  Worker& w = workers_[index(worker)];
  w.started_unix_s.store(static_cast<int64_t>(::time(nullptr)), std::memory_order_relaxed);
  w.nodeid.store(nodeid, std::memory_order_relaxed);
  w.opcode.store(opcode, std::memory_order_relaxed);
  uint32_t slot = 0;
  if (nodeid == imagefs::kRootNodeId) {
    slot = root_slot_.load(std::memory_order_relaxed);
  } else if (auto ref = imagefs::decode_node(nodeid)) {
    slot = ref->slot;
  }
  w.slot.store(slot, std::memory_order_relaxed);
  w.unique.store(unique, std::memory_order_release);
  const uint64_t n = w.requests.load(std::memory_order_relaxed);
  w.requests.store(n + 1, std::memory_order_relaxed);
  w.sample_started_ns.store(n % kLatencySampleEvery == 0 ? steady_ns() : 0, std::memory_order_relaxed);
}

void DaemonMetrics::on_end(unsigned worker, uint32_t opcode, int error, uint64_t data_bytes) {
  const unsigned i = index(worker);
  Worker& w = workers_[i];
  w.unique.store(0, std::memory_order_release);
  const uint64_t sampled = w.sample_started_ns.load(std::memory_order_relaxed);
  const uint64_t micros = sampled != 0 ? (steady_ns() - sampled) / 1000U : 0;
  w.total.record(opcode, error, data_bytes);
  if (sampled != 0) w.total.record_latency(micros);
  const uint32_t slot = w.slot.load(std::memory_order_relaxed);
  if (slot == 0) return;
  EpochDomain::Guard guard(epochs_, i);
  if (const ImageCounters* image = table_.load(std::memory_order_acquire)->find(slot)) {
    Counters& c = image->per_worker[i];
    c.record(opcode, error, data_bytes);
    if (sampled != 0) c.record_latency(micros);
  }
}

// ---- snapshots -----------------------------------------------------------------------------

nlohmann::json DaemonMetrics::totals() const {
  CounterTotals sum;
  for (unsigned i = 0; i < workers_count_; ++i) sum.add(workers_[i].total);
  return sum.to_json();
}

nlohmann::json DaemonMetrics::image(uint32_t slot) const {
  std::shared_ptr<const ImageTable> table;
  {
    std::lock_guard lock(mu_);
    table = current_;
  }
  const ImageCounters* image = table->find(slot);
  if (image == nullptr) return nullptr;
  CounterTotals sum;
  for (unsigned i = 0; i < workers_count_; ++i) sum.add(image->per_worker[i]);
  return sum.to_json();
}

nlohmann::json DaemonMetrics::inflight() const {
  nlohmann::json out = nlohmann::json::array();
  for (unsigned i = 0; i < workers_count_; ++i) {
    const Worker& w = workers_[i];
    uint64_t unique = w.unique.load(std::memory_order_acquire);
    if (unique == 0) continue;
    out.push_back({{"inode", w.nodeid.load(std::memory_order_relaxed)},
                   {"opcode", w.opcode.load(std::memory_order_relaxed)},
                   {"unique", unique},
                   {"timestamp_secs", w.started_unix_s.load(std::memory_order_relaxed)}});
  }
  return out;
}

}  // namespace ferry::daemon
