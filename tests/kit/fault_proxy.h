// FaultProxy: an HTTP/1.1 proxy on 127.0.0.1 between a client under test (ferryd's lazy
// fetcher, the registry client) and a real server (Debian's docker-registry), that injects the
// faults a network and a misbehaving registry produce: delays, cut connections, stalls, wrong
// bytes and error answers.
//
// Each accepted connection carries exactly one request: the proxy reads its head (and a body
// of Content-Length bytes), applies the fault chosen for it, forwards it upstream with
// `Connection: close`, and relays the answer until the server closes; then it closes the
// client's connection too (clients reconnect, as they must after any server close). So faults
// apply per request and a test can name "the next request" without parsing keep-alive streams.
//
// The fault of a request is the first queued one-shot fault whose path filter matches, else the
// standing fault (set_fault), else none. Counters and the heads of requests are kept for
// asserts. Thread-safety: every method may be called from any thread while clients connect.
// The destructor stops the acceptor, releases stalled connections, and joins every thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace ferry::testkit {

struct Fault {
  enum class Kind {
    kNone,
    kDelay,        // wait `delay` before forwarding the request
    kCutAfter,     // relay `bytes` bytes of the answer, then close the client's connection
    kStall,        // forward nothing back until release_stalls() (or the proxy stops)
    kCorruptBody,  // flip the bits of the answer's body byte at `bytes` (after the head)
    kStatus,       // do not forward: answer `status` with an empty body
    kRefuse,       // close the client's connection before reading the request
  };
  Kind kind = Kind::kNone;
  std::chrono::milliseconds delay{0};
  uint64_t bytes = 0;
  int status = 500;
  std::string path_contains;  // applies only to requests whose target contains this ("" = all)

  static Fault none() { return {}; }
  static Fault delay_by(std::chrono::milliseconds d, std::string path = {});
  static Fault cut_after(uint64_t n, std::string path = {});
  static Fault stall(std::string path = {});
  static Fault corrupt_body_at(uint64_t offset, std::string path = {});
  static Fault answer(int status, std::string path = {});
  static Fault refuse(std::string path = {});
};

class FaultProxy {
 public:
  // Proxies to 127.0.0.1:`upstream_port`. Listens on an ephemeral port (ok() false on failure).
  explicit FaultProxy(int upstream_port);
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  [[nodiscard]] bool ok() const { return listen_fd_ >= 0; }
  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] std::string host() const { return "127.0.0.1:" + std::to_string(port_); }

  // The fault of every request that no queued fault claims.
  void set_fault(Fault f);
  // Applies `f` to the next matching request only.
  void push_fault(Fault f);
  // Lets every stalled answer go on (and later kStall ones too, until set_fault/push_fault).
  void release_stalls();

  [[nodiscard]] uint64_t requests() const { return requests_.load(); }
  // Requests read and not yet answered completely (being delayed, forwarded or relayed).
  [[nodiscard]] uint64_t in_flight() const { return in_flight_.load(); }
  [[nodiscard]] uint64_t faults_applied() const { return faults_applied_.load(); }
  [[nodiscard]] uint64_t bytes_to_client() const { return bytes_to_client_.load(); }
  // Request lines ("GET /v2/... HTTP/1.1") and the Range header, one string per request.
  std::vector<std::string> request_log();

 private:
  struct Conn {
    int fd = -1;
    std::thread thread;
    std::atomic<bool> done{false};
  };
  void accept_loop();
  void serve(int client_fd);
  Fault fault_for(const std::string& target);
  // Waits while stalled; false when the proxy stops.
  bool wait_stall_released();
  void reap_done();

  int upstream_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  int stop_fd_ = -1;  // eventfd: readable when the proxy stops
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;

  std::mutex mu_;
  std::condition_variable stall_cv_;
  bool stalls_released_ = false;
  Fault standing_;
  std::deque<Fault> queued_;
  std::vector<std::string> log_;
  std::list<Conn> conns_;

  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> in_flight_{0};
  std::atomic<uint64_t> faults_applied_{0};
  std::atomic<uint64_t> bytes_to_client_{0};
};

}  // namespace ferry::testkit
