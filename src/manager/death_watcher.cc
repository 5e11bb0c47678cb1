#include "manager/death_watcher.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>

#include "common/unique_fd.h"

namespace ferry::manager {
namespace {

constexpr uint64_t kWakeId = 0;  // epoll data of the eventfd; watches count from 1

}  // namespace

struct DeathWatcher::Impl {
  struct Watch {
    uint64_t id = 0;
    UniqueFd fd;  // our own dup of the caller's pidfd (see watch())
    int pid = 0;
  };

  Callback on_death;
  UniqueFd epoll;
  UniqueFd wake;
  std::thread thread;

  std::mutex mu;  // guards everything below
  std::condition_variable callback_done;
  bool stopping = false;
  uint64_t next_id = 1;
  std::map<std::string, Watch> by_key;
  std::unordered_map<uint64_t, std::string> key_of;  // watch id -> key
  // The key whose callback runs right now on the watcher thread, if any.
  std::optional<std::string> running_key;

  // Removes the watch under `key` (epoll registration, fd, indexes). Caller holds mu.
  void remove_locked(const std::string& key) {
    auto it = by_key.find(key);
    if (it == by_key.end()) return;
    ::epoll_ctl(epoll.get(), EPOLL_CTL_DEL, it->second.fd.get(), nullptr);
    key_of.erase(it->second.id);
    by_key.erase(it);
  }

  void run() {
    std::array<epoll_event, 64> events{};
    while (true) {
      int n = ::epoll_wait(epoll.get(), events.data(), static_cast<int>(events.size()), -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        // Cannot happen with valid fds; without epoll there is nothing left to watch with.
        spdlog::error("death watcher: epoll_wait failed: {}; no further deaths will be noticed",
                      std::strerror(errno));
        return;
      }
      for (int i = 0; i < n; ++i) {
        uint64_t id = events[static_cast<size_t>(i)].data.u64;
        if (id == kWakeId) {
          uint64_t count = 0;
          (void)!::read(wake.get(), &count, sizeof count);
          continue;
        }
        std::string key;
        int pid = 0;
        {
          std::lock_guard lock(mu);
          if (stopping) return;
          // An event fetched before an unwatch() or a replacing watch() in this batch names a
          // watch that no longer exists: it must not fire.
          auto k = key_of.find(id);
          if (k == key_of.end()) continue;
          key = k->second;
          pid = by_key.at(key).pid;
          remove_locked(key);
          running_key = key;
        }
        try {
          on_death(key, pid);
        } catch (const std::exception& e) {
          spdlog::error("death watcher: callback for '{}' (pid {}) threw: {}", key, pid, e.what());
        } catch (...) {
          spdlog::error("death watcher: callback for '{}' (pid {}) threw", key, pid);
        }
        {
          std::lock_guard lock(mu);
          running_key.reset();
        }
        callback_done.notify_all();
      }
      std::lock_guard lock(mu);
      if (stopping) return;
    }
  }

  void poke() const {
    uint64_t one = 1;
    (void)!::write(wake.get(), &one, sizeof one);
  }
};

Result<std::unique_ptr<DeathWatcher>> DeathWatcher::create(Callback on_death) {
  auto impl = std::make_unique<Impl>();
  impl->on_death = std::move(on_death);
  impl->epoll.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!impl->epoll) return errno_error("death watcher: epoll_create1");
  impl->wake.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!impl->wake) return errno_error("death watcher: eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeId;
  if (::epoll_ctl(impl->epoll.get(), EPOLL_CTL_ADD, impl->wake.get(), &ev) != 0) {
    return errno_error("death watcher: adding eventfd to epoll");
  }
  Impl* raw = impl.get();
  try {
    impl->thread = std::thread([raw] { raw->run(); });
  } catch (const std::system_error& e) {
    return Error{e.code().value(), std::string("death watcher: starting its thread: ") + e.what()};
  }
  return std::make_unique<DeathWatcher>(std::move(impl));
}

DeathWatcher::DeathWatcher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

// Must not be called from the callback: the thread cannot join itself.
DeathWatcher::~DeathWatcher() {
  if (!impl_) return;
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->poke();
  // The thread returns after the callback in progress (if any), so none runs after this.
  if (impl_->thread.joinable()) impl_->thread.join();
}

Status DeathWatcher::watch(const std::string& key, int pidfd, int pid) {
  // A dup of our own: the watch does not depend on the caller's fd number (which could be
  // closed and reused for another file while still registered), and the same pidfd may be
  // watched under two keys (epoll refuses one fd twice).
  UniqueFd fd(::fcntl(pidfd, F_DUPFD_CLOEXEC, 3));
  if (!fd)
    return errno_error("watching '" + key + "' (pid " + std::to_string(pid) + "): pidfd " +
                       std::to_string(pidfd));
  std::lock_guard lock(impl_->mu);
  impl_->remove_locked(key);
  uint64_t id = impl_->next_id++;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = id;
  if (::epoll_ctl(impl_->epoll.get(), EPOLL_CTL_ADD, fd.get(), &ev) != 0) {
    return errno_error("watching '" + key + "' (pid " + std::to_string(pid) + "): epoll_ctl");
  }
  impl_->key_of.emplace(id, key);
  impl_->by_key.emplace(key, Impl::Watch{id, std::move(fd), pid});
  return ok_status();
}

void DeathWatcher::unwatch(const std::string& key) {
  std::unique_lock lock(impl_->mu);
  impl_->remove_locked(key);
  // The callback calling unwatch() for its own key must not wait for itself.
  if (std::this_thread::get_id() == impl_->thread.get_id()) return;
  impl_->callback_done.wait(lock, [&] { return impl_->running_key != key; });
}

}  // namespace ferry::manager
