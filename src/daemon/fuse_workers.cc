#include "daemon/fuse_workers.h"

#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>

namespace ferry::daemon {
namespace {

void on_wakeup_signal(int /*sig*/) {}

// Adapts the session to the server's reply interface.
class SessionReplyWriter final : public fuse::ReplyWriter {
 public:
  explicit SessionReplyWriter(const fuse::FuseSession& session) : session_(session) {}
  int write(std::span<const iovec> iov) override {
    int rc = session_.write(iov);
    // ENOENT: the kernel stopped waiting (interrupted, or resent elsewhere). Not an error.
    if (rc != 0 && rc != -ENOENT) spdlog::debug("reply write failed: {}", std::strerror(-rc));
    return rc;
  }

 private:
  const fuse::FuseSession& session_;
};

}  // namespace

void FuseWorkers::install_wakeup_signal() {
  struct sigaction sa {};
  sa.sa_handler = on_wakeup_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocked read must return EINTR
  sigaction(SIGUSR1, &sa, nullptr);
}

FuseWorkers::FuseWorkers(const fuse::FuseSession& session, fuse::FuseServer& server,
                         std::function<void()> on_unmounted)
    : session_(session), server_(server), on_unmounted_(std::move(on_unmounted)) {}

FuseWorkers::~FuseWorkers() {
  stop();
}

void FuseWorkers::start(unsigned threads) {
  stopping_.store(false);
  for (unsigned i = 0; i < threads; ++i) {
    auto w = std::make_unique<Worker>();
    Worker* raw = w.get();
    threads_.push_back(std::move(w));
    raw->thread = std::thread([this, raw] { run(*raw); });
  }
}

void FuseWorkers::stop() {
  stopping_.store(true, std::memory_order_release);
  for (auto& w : threads_) {
    // The signal may land just before the thread enters read(): repeat until it has left.
    while (!w->done.load(std::memory_order_acquire)) {
      pthread_kill(w->thread.native_handle(), SIGUSR1);
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    w->thread.join();
  }
  threads_.clear();
}

void FuseWorkers::run(Worker& self) {
  sigset_t wake;
  sigemptyset(&wake);
  sigaddset(&wake, SIGUSR1);
  pthread_sigmask(SIG_UNBLOCK, &wake, nullptr);

  std::vector<std::byte> request(server_.request_buffer_size());
  std::vector<std::byte> scratch(server_.reply_buffer_size());
  SessionReplyWriter writer(session_);
  while (!stopping_.load(std::memory_order_acquire)) {
    size_t len = 0;
    auto outcome = session_.read_request(request, len);
    if (!outcome.ok()) {
      spdlog::error("{}", outcome.error().message);
      break;
    }
    if (*outcome == fuse::ReadOutcome::kInterrupted) continue;
    if (*outcome == fuse::ReadOutcome::kUnmounted) {
      if (!unmounted_reported_.exchange(true) && on_unmounted_) on_unmounted_();
      break;
    }
    server_.handle(std::span<const std::byte>(request.data(), len), scratch, writer);
  }
  self.done.store(true, std::memory_order_release);
}

}  // namespace ferry::daemon
