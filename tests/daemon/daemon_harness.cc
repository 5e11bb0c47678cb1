#include "daemon/daemon_harness.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace ferry::test {
Ferryd Ferryd::start(const std::vector<std::string>& args, const std::string& log,
                     const std::map<std::string, std::string>& env, const std::vector<std::string>& binary) {
  std::vector<std::string> argv = binary;
  argv[0] = binary_path(argv[0]);
  argv.emplace_back("fuse");
  argv.insert(argv.end(), args.begin(), args.end());
  Ferryd d;
  d.child_ = Process::start(argv, log, env);
  return d;
}

http::HttpResponse api(const std::string& sock, const std::string& method, const std::string& path,
                       const std::string& body) {
  auto r = http::http_request(sock, method, path, body, std::chrono::seconds(20));
  if (!r.ok()) {
    ADD_FAILURE() << method << " " << path << ": " << r.error().message;
    return http::HttpResponse{-1, r.error().message, ""};
  }
  return *r;
}

Status api_ok(const std::string& sock, const std::string& method, const std::string& path) {
  auto r = http::http_request(sock, method, path, {}, std::chrono::seconds(20));
  if (!r.ok()) return r.error();
  if (r->status / 100 != 2)
    return Error{EIO, method + " " + path + " -> " + std::to_string(r->status) + " " + r->body};
  return {};
}

std::string daemon_state(const std::string& sock) {
  auto r = http::http_request(sock, "GET", "/api/v1/daemon", {}, std::chrono::seconds(2));
  if (!r.ok() || r->status != 200) return "";
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (j.is_discarded() || !j.contains("state")) return "";
  return j["state"].get<std::string>();
}

bool wait_state(const std::string& sock, const std::string& state, std::chrono::milliseconds timeout) {
  return wait_until([&] { return daemon_state(sock) == state; }, timeout);
}

}  // namespace ferry::test
