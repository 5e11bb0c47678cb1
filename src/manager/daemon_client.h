// DaemonClient: the manager's side of one ferryd's HTTP API (docs/api.md), nothing else: the
// real DaemonApi (daemon_api.h).
//
// Every call is one request with its own deadline; a non-2xx answer becomes an Error whose
// message carries the daemon's own {"message"} ("ferryd d1: takeover: 400 rejected state: ...").
// Transport failures keep their errno (ECONNREFUSED/ENOENT: nobody listens; ETIMEDOUT).
//
// Thread-safety: stateless apart from the socket path; calls may run concurrently.
#pragma once

#include <chrono>
#include <string>

#include "common/result.h"
#include "manager/daemon_api.h"

namespace ferry::manager {

class DaemonClient final : public DaemonApi {
 public:
  explicit DaemonClient(std::string api_socket, std::string label = {});

  Result<DaemonInfo> info(std::chrono::milliseconds timeout = std::chrono::seconds(2)) const override;
  // Polls info() until the daemon reports `state` (or the deadline passes: ETIMEDOUT naming the
  // last state seen or the last transport error). Polls every 200 us at first, backing off to
  // 5 ms, so a daemon that comes up quickly is seen quickly.
  Result<DaemonInfo> wait_state(const std::string& state, std::chrono::milliseconds timeout) const;
  Status start(std::chrono::milliseconds timeout = std::chrono::seconds(5)) const override;
  Status start_when_predecessor_exits(std::chrono::milliseconds timeout = std::chrono::seconds(5)) const override;
  Status exit(std::chrono::milliseconds timeout = std::chrono::seconds(5)) const override;
  Status sendfd(std::chrono::milliseconds timeout = std::chrono::seconds(5)) const override;
  Status takeover(std::chrono::milliseconds timeout = std::chrono::seconds(10)) const override;
  Status attach(const std::string& sub, const std::string& bootstrap, const std::string& config_json,
                std::chrono::milliseconds timeout = std::chrono::seconds(10)) const override;
  Status detach(const std::string& sub, std::chrono::milliseconds timeout = std::chrono::seconds(10)) const override;
  Result<std::string> metrics(std::chrono::milliseconds timeout = std::chrono::milliseconds(500)) const override;

  [[nodiscard]] const std::string& socket() const { return socket_; }

 private:
  std::string socket_;
  std::string label_;
};

}  // namespace ferry::manager
