// DeathWatcher: tells the manager, at once, that a watched daemon process has exited.
//
// One thread blocks in epoll_wait over the pidfds of every watched process (plus an eventfd to
// wake it for changes and shutdown). When a pidfd becomes readable the watch is removed and the
// callback runs on the watcher thread with the key it was registered under; the callback must
// not block for long (it hands the work to the recovery path).
//
// Thread-safety: watch()/unwatch() from any thread. After unwatch(key) returns, the callback
// for that key is not running and will not run for the removed watch. The destructor stops the
// thread; no callback runs after it returns.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/result.h"

namespace ferry::manager {

class DeathWatcher {
 public:
  using Callback = std::function<void(const std::string& key, int pid)>;
  static Result<std::unique_ptr<DeathWatcher>> create(Callback on_death);
  ~DeathWatcher();
  DeathWatcher(const DeathWatcher&) = delete;
  DeathWatcher& operator=(const DeathWatcher&) = delete;

  // Watches `pidfd` (borrowed: must stay open until unwatch or the callback) under `key`,
  // replacing an earlier watch of the same key. A process already dead fires at once.
  Status watch(const std::string& key, int pidfd, int pid);
  void unwatch(const std::string& key);

  struct Impl;
  explicit DeathWatcher(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace ferry::manager
