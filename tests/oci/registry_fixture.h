// Test kit for registry tests: Debian's docker-registry started on a private port and
// directory (plain HTTP, htpasswd Basic auth, token auth through tests/oci/token_server.py,
// TLS with a CA made with openssl at test time), stopped by pid on destruction.
//
// Also: free_tcp_port(), and ScriptedHttpServer, a one-thread HTTP/1.1 responder with canned
// answers (for faults a real registry will not produce: 5xx, redirects to another host, a
// server that never answers), recording every request it received.
#pragma once

#include <atomic>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/test_support.h"

namespace ferry::oci::test {

using ferry::test::Process;
using ferry::test::TempDir;

// A port nothing listens on right now (bound once to 127.0.0.1:0, then released).
int free_tcp_port();
// True once something accepts TCP connections on 127.0.0.1:port, polling up to `timeout`.
bool wait_for_port(int port, std::chrono::milliseconds timeout);

struct RegistryConfig {
  enum class Auth { kNone, kBasic, kToken };
  Auth auth = Auth::kNone;
  bool tls = false;
  std::string user = "alice";
  std::string password = "pa55:w0rd";  // with a ':' on purpose
  int token_expires_in = 300;          // what the token server tells clients
  int token_jwt_lifetime = 300;        // the token's exp, as the registry checks it
};

class RegistryServer {
 public:
  explicit RegistryServer(RegistryConfig config = {});  // ASSERTs (via ADD_FAILURE) on failure
  ~RegistryServer();
  RegistryServer(const RegistryServer&) = delete;
  RegistryServer& operator=(const RegistryServer&) = delete;

  [[nodiscard]] bool ok() const { return ok_; }
  [[nodiscard]] std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] const std::string& ca_file() const { return ca_file_; }  // with tls
  [[nodiscard]] std::string log() const { return ferry::test::read_file(dir_ / "registry.log"); }
  [[nodiscard]] std::string token_log() const { return ferry::test::read_file(dir_ / "token.log"); }
  [[nodiscard]] const std::string& dir() const { return dir_.path(); }
  [[nodiscard]] const RegistryConfig& config() const { return config_; }
  // Stops it (SIGKILL, reaped) and starts it again on the same port and storage.
  bool restart();
  // The two halves of restart(), for tests that read while the registry is down.
  void stop();
  bool start_again();

 private:
  bool start();
  RegistryConfig config_;
  TempDir dir_;
  int port_ = 0;
  int token_port_ = 0;
  std::string ca_file_;
  Process registry_;
  Process token_server_;
  bool ok_ = false;
};

struct ScriptedAnswer {
  std::string head;  // "HTTP/1.1 200 OK\r\nHeader: v\r\n" (Content-Length is added)
  std::string body;
  bool hang = false;  // read the request, never answer (until the server stops)
};

class ScriptedHttpServer {
 public:
  ScriptedHttpServer();
  ~ScriptedHttpServer();
  ScriptedHttpServer(const ScriptedHttpServer&) = delete;
  ScriptedHttpServer& operator=(const ScriptedHttpServer&) = delete;

  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  // Answers are used in order, one per request; when they run out, 404.
  void push(ScriptedAnswer answer);
  // Every request received so far, head (request line + headers) only.
  std::vector<std::string> requests();

 private:
  void serve();
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::deque<ScriptedAnswer> answers_;
  std::vector<std::string> requests_;
  std::thread thread_;
};

}  // namespace ferry::oci::test
