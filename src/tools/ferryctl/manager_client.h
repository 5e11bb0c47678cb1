// ManagerClient: how ferryctl's commands talk to ferry-snapshotter's system API
// (docs/manager-api.md) over its unix socket, and the output conventions they share.
//
// Every failure comes back as ONE line a person can act on, naming the socket: no socket (the
// manager is not running, or --socket is wrong), permission denied (not root / not the socket's
// owner), connection refused (a stale socket file nobody listens on), no answer in time, or the
// server's own {"message"} for a 4xx/5xx answer. Commands print it with fail() and exit 1.
//
// Thread-safety: a ManagerClient is immutable; calls may run concurrently (each opens its own
// connection, see http/http_client.h).
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "common/result.h"

namespace ferry::ctl {

inline constexpr const char* kDefaultSystemSocket = "/run/ferry/system.sock";
inline constexpr const char* kSystemSocketEnv = "FERRY_SYSTEM_SOCKET";

class ManagerClient {
 public:
  explicit ManagerClient(std::string socket) : socket_(std::move(socket)) {}

  // One request. A 2xx answer returns its body (possibly empty); anything else an Error whose
  // message is the line to print.
  [[nodiscard]] Result<std::string> call(const std::string& method, const std::string& path_and_query,
                                         const std::string& body = {},
                                         std::chrono::milliseconds timeout = std::chrono::seconds(30)) const;
  // The same, with the answer parsed as JSON (a body that is not JSON is an error naming it).
  [[nodiscard]] Result<nlohmann::json> call_json(
      const std::string& method, const std::string& path_and_query, const std::string& body = {},
      std::chrono::milliseconds timeout = std::chrono::seconds(30)) const;

 private:
  std::string socket_;
};

// Prints "ferryctl: error: <message>" on stderr; returns 1 (the exit status of a failed command).
int fail(const Error& error);
// Pretty JSON (2-space indent) on stdout; invalid UTF-8 is replaced, never thrown on.
void print_json(const nlohmann::json& value);
// `path` made absolute against the current directory and normalised lexically ("a/./b/" ->
// "/cwd/a/b"); symlinks are not resolved, so the manager sees the name the operator gave.
std::string absolute_path(const std::string& path);
// A JSON field for a table cell: strings as they are, numbers and booleans printed, missing or
// null as "-".
std::string cell(const nlohmann::json& object, const char* key);

}  // namespace ferry::ctl
