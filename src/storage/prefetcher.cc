#include "storage/prefetcher.h"

#include <algorithm>

namespace ferry::storage {

DemandGate::Demand::~Demand() {
  if (gate_ == nullptr) return;
  if (gate_->in_flight_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    // The lock orders this notify after a waiter's check of in_flight_ (no lost wake-up).
    std::lock_guard lock(gate_->mu_);
    gate_->quiet_.notify_all();
  }
}

DemandGate::Demand DemandGate::demand() {
  in_flight_.fetch_add(1, std::memory_order_acq_rel);
  return Demand(this);
}

bool DemandGate::wait_quiet(const std::atomic<bool>& stopping) {
  std::unique_lock lock(mu_);
  quiet_.wait(lock, [&] { return stopping.load() || in_flight_.load(std::memory_order_acquire) == 0; });
  return !stopping.load();
}

void DemandGate::wake() {
  std::lock_guard lock(mu_);
  quiet_.notify_all();
}

Prefetcher::Prefetcher(std::vector<PrefetchJob> jobs, PrefetchOptions options, std::shared_ptr<DemandGate> gate)
    : jobs_(std::move(jobs)), options_(options), gate_(std::move(gate)) {
  options_.threads = std::max(1U, options_.threads);
  for (const PrefetchJob& job : jobs_) {
    if (job.target == nullptr) continue;
    const uint64_t end = std::min(job.first + job.count, job.target->chunk_count());
    uint64_t i = job.first;
    while (i < end) {
      Piece piece{job.target.get(), i, 0, 0};
      // At least one chunk; then as many as fit piece_bytes.
      do {
        piece.bytes += job.target->stored_size(i);
        ++piece.count;
        ++i;
      } while (i < end && piece.bytes + job.target->stored_size(i) <= options_.piece_bytes);
      chunks_total_ += piece.count;
      pieces_.push_back(piece);
    }
  }
  budget_until_ = std::chrono::steady_clock::now();
  running_ = options_.threads;
  workers_.reserve(options_.threads);
  for (unsigned t = 0; t < options_.threads; ++t) workers_.emplace_back([this] { work(); });
}

Prefetcher::~Prefetcher() {
  stop();
  for (auto& w : workers_) {
    if (w.joinable()) w.join();
  }
}

void Prefetcher::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  gate_->wake();
}

bool Prefetcher::take_budget(uint64_t bytes) {
  if (options_.bandwidth_rate == 0) return !stopping_.load();
  std::unique_lock lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  const auto start = std::max(now, budget_until_);
  budget_until_ = start + std::chrono::nanoseconds(bytes * 1'000'000'000ULL / options_.bandwidth_rate);
  // Pacing, not a sleep: stop() interrupts it.
  return !stop_cv_.wait_until(lock, start, [&] { return stopping_.load(); });
}

void Prefetcher::work() {
  while (true) {
    const size_t index = next_.fetch_add(1);
    if (index >= pieces_.size()) break;
    const Piece& piece = pieces_[index];
    if (!gate_->wait_quiet(stopping_) || !take_budget(piece.bytes)) break;
    Status st = piece.target->fill(piece.first, piece.count);
    if (st.ok()) {
      chunks_done_ += piece.count;
      bytes_done_ += piece.bytes;
    } else {
      ++pieces_failed_;
      std::lock_guard lock(mu_);
      last_error_ = st.error().message;
    }
  }
  running_.fetch_sub(1);
}

PrefetchProgress Prefetcher::progress() const {
  PrefetchProgress p;
  p.chunks_total = chunks_total_;
  p.chunks_done = chunks_done_.load();
  p.bytes_done = bytes_done_.load();
  p.pieces_failed = pieces_failed_.load();
  p.finished = running_.load() == 0;
  std::lock_guard lock(mu_);
  p.last_error = last_error_;
  return p;
}

}  // namespace ferry::storage
