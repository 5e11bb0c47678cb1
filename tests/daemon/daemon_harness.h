// What the daemon end-to-end tests share beyond the test kit (sample images and reader threads
// come from tests/kit): ferryd processes driven over their real HTTP API.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "http/http_client.h"
#include "support/test_support.h"

namespace ferry::test {

// A ferryd process. The destructor kills it (SIGKILL, by pid) if still running.
class Ferryd {
 public:
  Ferryd() = default;
  // Starts `ferryd fuse ARGS...`; logs go to `log`. `binary` names another daemon of the build
  // and the arguments it takes before `fuse` (a test daemon, e.g. {"ferryd-stalling", PATH}).
  static Ferryd start(const std::vector<std::string>& args, const std::string& log,
                      const std::map<std::string, std::string>& env = {},
                      const std::vector<std::string>& binary = {"ferryd"});
  Process& process() { return child_; }
  [[nodiscard]] pid_t pid() const { return child_.pid(); }

 private:
  Process child_;
};

// One HTTP call to a unix socket; fails the test on transport errors when `must` is set.
http::HttpResponse api(const std::string& sock, const std::string& method, const std::string& path,
                       const std::string& body = {});
// One HTTP call that must answer 2xx: an error (naming the call and the answer) otherwise. For
// calls a supervisor exchange waits on (sendfd, takeover).
Status api_ok(const std::string& sock, const std::string& method, const std::string& path);
// The daemon's "state" field, or "" if it does not answer.
std::string daemon_state(const std::string& sock);
// Polls until the daemon answers with `state` (deadline).
bool wait_state(const std::string& sock, const std::string& state, std::chrono::milliseconds timeout = 10s);

}  // namespace ferry::test
