#include "daemon/fuse_workers.h"

#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <span>

#include "daemon/session_writer.h"

namespace ferry::daemon {
namespace {

void on_wakeup_signal(int /*sig*/) {}

}  // namespace

void FuseWorkers::install_wakeup_signal() {
  struct sigaction sa {};
  sa.sa_handler = on_wakeup_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocked read must return EINTR
  sigaction(SIGUSR1, &sa, nullptr);
}

FuseWorkers::FuseWorkers(fuse::FuseServer& server, std::function<void()> on_unmounted)
    : server_(server), on_unmounted_(std::move(on_unmounted)) {}

FuseWorkers::~FuseWorkers() {
  stop();
}

void FuseWorkers::prepare(unsigned threads) {
  if (stopping_.load()) stop();  // quiesced workers are joined before new ones are made
  if (!threads_.empty()) return;
  stopping_.store(false);
  released_.store(false);
  threads = std::min(threads, fuse::kMaxWorkers);
  for (unsigned i = 0; i < threads; ++i) {
    auto w = std::make_unique<Worker>();
    w->index = i;
    Worker* raw = w.get();
    threads_.push_back(std::move(w));
    raw->thread = std::thread([this, raw] { run(*raw); });
  }
}

void FuseWorkers::start(const fuse::FuseSession& session, unsigned threads) {
  prepare(threads);
  session_.store(&session, std::memory_order_release);
  released_.store(true, std::memory_order_release);
  released_.notify_all();
}

void FuseWorkers::quiesce() {
  stopping_.store(true, std::memory_order_release);
  released_.store(true, std::memory_order_release);  // parked workers wake up, see stopping_, leave
  released_.notify_all();
  // Wake every thread at once (not one after the other): the old daemon of a hand-over should
  // be gone quickly. A signal may land just before a thread enters read(): repeat until each
  // has left its loop. An interrupted read takes nothing from the kernel's queue. The last
  // thread to leave wakes this one, rather than a fixed poll interval.
  const auto all_done = [this] {
    return std::all_of(threads_.begin(), threads_.end(),
                       [](const auto& w) { return w->done.load(std::memory_order_acquire); });
  };
  while (true) {
    for (auto& w : threads_) {
      if (!w->done.load(std::memory_order_acquire)) pthread_kill(w->thread.native_handle(), SIGUSR1);
    }
    std::unique_lock lock(done_mu_);
    if (done_cv_.wait_for(lock, std::chrono::microseconds(200), all_done)) break;
  }
}

void FuseWorkers::stop() {
  quiesce();
  for (auto& w : threads_) w->thread.join();
  threads_.clear();
  released_.store(false);
  session_.store(nullptr);
}

void FuseWorkers::run(Worker& self) {
  sigset_t wake;
  sigemptyset(&wake);
  sigaddset(&wake, SIGUSR1);
  pthread_sigmask(SIG_UNBLOCK, &wake, nullptr);

  // Not zero-filled: a successor starts its workers inside a blackout, and zeroing a few
  // hundred KiB per thread only delays the first request. The kernel fills what we read.
  const size_t request_size = server_.request_buffer_size();
  const size_t scratch_size = server_.reply_buffer_size();
  auto request = std::make_unique_for_overwrite<std::byte[]>(request_size);
  auto scratch = std::make_unique_for_overwrite<std::byte[]>(scratch_size);
  // Parked until start() or stop(). A wake-up signal only interrupts the wait; it re-checks.
  while (!released_.load(std::memory_order_acquire)) released_.wait(false, std::memory_order_acquire);
  const fuse::FuseSession* session = session_.load(std::memory_order_acquire);
  if (session == nullptr || stopping_.load(std::memory_order_acquire)) {
    mark_done(self);
    return;
  }
  SessionWriter writer(*session);
  while (!stopping_.load(std::memory_order_acquire)) {
    size_t len = 0;
    auto outcome = session->read_request(std::span<std::byte>(request.get(), request_size), len);
    if (!outcome.ok()) {
      spdlog::error("{}", outcome.error().message);
      break;
    }
    if (*outcome == fuse::ReadOutcome::kInterrupted) continue;
    if (*outcome == fuse::ReadOutcome::kUnmounted) {
      if (!unmounted_reported_.exchange(true) && on_unmounted_) on_unmounted_();
      break;
    }
    server_.handle(std::span<const std::byte>(request.get(), len),
                   std::span<std::byte>(scratch.get(), scratch_size), writer, self.index);
  }
  mark_done(self);
}

void FuseWorkers::mark_done(Worker& self) {
  {
    std::lock_guard lock(done_mu_);
    self.done.store(true, std::memory_order_release);
  }
  done_cv_.notify_all();
}

}  // namespace ferry::daemon
