#include "oci/registry_fixture.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>

namespace ferry::oci::test {

using ferry::test::run_shell;
using ferry::test::wait_until;

namespace {

sockaddr_in loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

bool write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  return static_cast<bool>(out);
}

}  // namespace

int free_tcp_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = loopback(0);
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

bool wait_for_port(int port, std::chrono::milliseconds timeout) {
  return wait_until(
      [port] {
        const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a = loopback(port);
        const bool up = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        ::close(fd);
        return up;
      },
      timeout);
}

RegistryServer::RegistryServer(RegistryConfig config) : config_(std::move(config)) { ok_ = start(); }

RegistryServer::~RegistryServer() {
  registry_.kill_and_reap();
  token_server_.kill_and_reap();
}

bool RegistryServer::start() {
  port_ = free_tcp_port();
  std::string yaml = "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: " + dir_ / "storage" +
                     "\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:" + std::to_string(port_) +
                     "\n  secret: ferry-test-secret\n";
  if (config_.tls) {
    // A CA, and a server certificate it signs for 127.0.0.1.
    const std::string d = dir_.path();
    const std::string cmd =
        "cd " + d + " && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=ferry-test-ca "
        ">/dev/null 2>&1 && openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1 "
        ">/dev/null 2>&1 && printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext && openssl x509 -req -in server.csr -CA ca.pem "
        "-CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext >/dev/null 2>&1";
    if (run_shell(cmd) != 0) {
      ADD_FAILURE() << "openssl could not make the test CA";
      return false;
    }
    ca_file_ = dir_ / "ca.pem";
    yaml += "  tls:\n    certificate: " + dir_ / "server.pem" + "\n    key: " + dir_ / "server.key" + "\n";
  }
  if (config_.auth == RegistryConfig::Auth::kBasic) {
    if (run_shell("htpasswd -Bbn '" + config_.user + "' '" + config_.password + "' > " + dir_ / "htpasswd") != 0) {
      ADD_FAILURE() << "htpasswd failed";
      return false;
    }
    yaml += "auth:\n  htpasswd:\n    realm: ferry-test\n    path: " + dir_ / "htpasswd" + "\n";
  } else if (config_.auth == RegistryConfig::Auth::kToken) {
    if (run_shell("cd " + dir_.path() + " && openssl req -x509 -newkey rsa:2048 -nodes -keyout token.key -out token.pem -days 2 "
            "-subj /CN=ferry-token-issuer >/dev/null 2>&1") != 0) {
      ADD_FAILURE() << "openssl could not make the token signing key";
      return false;
    }
    token_port_ = free_tcp_port();
    token_server_ = Process::start(
        {"/usr/bin/python3", std::string(FERRY_SOURCE_DIR) + "/tests/oci/token_server.py", "--port",
         std::to_string(token_port_), "--key", dir_ / "token.key", "--cert", dir_ / "token.pem", "--issuer",
         "ferry-test-issuer", "--service", "ferry-test-registry", "--user", config_.user, "--password",
         config_.password, "--expires-in", std::to_string(config_.token_expires_in), "--jwt-lifetime",
         std::to_string(config_.token_jwt_lifetime), "--log", dir_ / "token.log"},
        dir_ / "token_server.out");
    if (!wait_for_port(token_port_, std::chrono::seconds(20))) {
      ADD_FAILURE() << "the token server did not listen: " << ferry::test::read_file(dir_ / "token_server.out");
      return false;
    }
    yaml += "auth:\n  token:\n    realm: http://127.0.0.1:" + std::to_string(token_port_) +
            "/token\n    service: ferry-test-registry\n    issuer: ferry-test-issuer\n    rootcertbundle: " +
            dir_ / "token.pem" + "\n";
  }
  if (!write_text(dir_ / "config.yml", yaml)) return false;
  return restart();
}

bool RegistryServer::restart() {
  stop();
  return start_again();
}

void RegistryServer::stop() { registry_.kill_and_reap(); }

bool RegistryServer::start_again() {
  registry_ = Process::start({"/usr/bin/docker-registry", "serve", dir_ / "config.yml"}, dir_ / "registry.log");
  if (!wait_for_port(port_, std::chrono::seconds(20))) {
    ADD_FAILURE() << "docker-registry did not listen on " << port_ << ": " << log();
    return false;
  }
  return true;
}

ScriptedHttpServer::ScriptedHttpServer() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = loopback(0);
  socklen_t len = sizeof a;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_fd_, 16) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ADD_FAILURE() << "cannot listen for the scripted server";
    return;
  }
  port_ = ntohs(a.sin_port);
  thread_ = std::thread([this] { serve(); });
}

ScriptedHttpServer::~ScriptedHttpServer() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  ::close(listen_fd_);
}

void ScriptedHttpServer::push(ScriptedAnswer answer) {
  std::lock_guard lock(mu_);
  answers_.push_back(std::move(answer));
}

std::vector<std::string> ScriptedHttpServer::requests() {
  std::lock_guard lock(mu_);
  return requests_;
}

void ScriptedHttpServer::serve() {
  // One connection at a time, one request per read of a whole head; bodies are read and dropped.
  std::vector<int> conns;
  while (!stop_) {
    std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
    for (int c : conns) fds.push_back({c, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), 20) <= 0) continue;
    if ((fds[0].revents & POLLIN) != 0) {
      const int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) conns.push_back(c);
    }
    for (size_t i = 1; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      const int c = fds[i].fd;
      std::string head;
      char buf[65536];
      const ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) {
        ::close(c);
        std::erase(conns, c);
        continue;
      }
      head.assign(buf, static_cast<size_t>(n));
      const size_t end = head.find("\r\n\r\n");
      if (end == std::string::npos) continue;  // a body piece of an earlier request
      ScriptedAnswer answer{"HTTP/1.1 404 Not Found\r\n", "", false};
      {
        std::lock_guard lock(mu_);
        requests_.push_back(head.substr(0, end));
        if (!answers_.empty()) {
          answer = std::move(answers_.front());
          answers_.pop_front();
        }
      }
      if (answer.hang) continue;
      const std::string out = answer.head + "Content-Length: " + std::to_string(answer.body.size()) + "\r\n\r\n" + answer.body;
      (void)::send(c, out.data(), out.size(), MSG_NOSIGNAL);
    }
  }
  for (int c : conns) ::close(c);
}

}  // namespace ferry::oci::test
