#include "support/bench_support.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

namespace ferry::bench {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {
const char* g_program = "bench";
}  // namespace

void set_program_name(const char* name) {
  g_program = name;
}
const char* program_name() {
  return g_program;
}

int64_t ns_of(std::chrono::nanoseconds d) {
  return d.count();
}
double to_ms(int64_t ns) {
  return static_cast<double>(ns) / 1e6;
}

std::string loadavg() {
  std::ifstream in("/proc/loadavg");
  std::string a;
  std::string b;
  std::string c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

// ---- interruption ----------------------------------------------------------------------------

std::atomic<int> g_signal{0};

Status check_interrupt() {
  if (int sig = g_signal.load(); sig != 0)
    return Error{EINTR, "interrupted by signal " + std::to_string(sig)};
  return {};
}

Status sleep_ns(int64_t ns) {
  int64_t until = now_ns() + ns;
  while (true) {
    FERRY_TRY(check_interrupt());
    int64_t left = until - now_ns();
    if (left <= 0) return {};
    std::this_thread::sleep_for(std::chrono::nanoseconds(std::min<int64_t>(left, 10 * kNsPerMs)));
  }
}

bool interrupted() {
  return g_signal.load() != 0;
}

bool poll_until(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                std::chrono::microseconds every) {
  bool held = false;
  wait_until([&] { return interrupted() || (held = done()); }, timeout, every, every);
  return held;
}

SignalWatcher::SignalWatcher() {
  sigemptyset(&set_);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGUSR1}) sigaddset(&set_, sig);
  pthread_sigmask(SIG_BLOCK, &set_, nullptr);
  thread_ = std::thread([this] {
    while (true) {
      int sig = 0;
      if (sigwait(&set_, &sig) != 0) continue;
      if (sig == SIGUSR1) {
        if (done_.load()) return;
        continue;
      }
      int none = 0;
      if (g_signal.compare_exchange_strong(none, sig)) {
        std::fprintf(stderr, "%s: got signal %d: cleaning up\n", program_name(), sig);
      }
    }
  });
}

SignalWatcher::~SignalWatcher() {
  done_.store(true);
  pthread_kill(thread_.native_handle(), SIGUSR1);
  thread_.join();
}

// ---- children ----------------------------------------------------------------------------------

SpawnOptions child_options(const std::string& log, int nice) {
  SpawnOptions o;
  o.log = log;
  o.nice = nice;
  o.own_group = true;
  o.close_fds = true;
  return o;
}

std::string last_line_of(const std::string& path) {
  std::string s = tail_of(path, 1);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  s.erase(0, s.find_first_not_of(' '));
  return s;
}

// ---- statistics ------------------------------------------------------------------------------

json summarize(std::vector<double> v) {
  if (v.empty()) return json{{"n", 0}};
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  double median = n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  auto rank = static_cast<size_t>(std::ceil(0.99 * static_cast<double>(n)));
  return json{{"n", n},
              {"min", v.front()},
              {"median", median},
              {"p99", v[std::max<size_t>(rank, 1) - 1]},
              {"max", v.back()}};
}

// ---- rounds and the idle control -------------------------------------------------------------

Status run_rounds(int rounds, const std::vector<RoundKind>& kinds, const std::function<Status()>& idle) {
  for (int i = 0; i < rounds; ++i) {
    for (const auto& k : kinds) {
      if (k.enabled) FERRY_TRY(k.run());
    }
    FERRY_TRY(idle());
  }
  return {};
}

Status IdleControl::round(ReaderProcess& reader, double handover_ms) {
  const int64_t t0 = now_ns();
  FERRY_TRY(sleep_ns(window_ms_ * kNsPerMs));  // not a synchronisation: a span in which nothing happens
  FERRY_ASSIGN(GapWindow w, reader.window(t0, t0 + window_ms_ * kNsPerMs, t0, 10s));
  idle_.push_back(to_ms(w.max_gap_ns));
  if (!std::isnan(handover_ms)) {
    const int64_t from = t0 + offset_ms_ * kNsPerMs;
    const auto length = static_cast<int64_t>(handover_ms * kNsPerMs);
    FERRY_ASSIGN(GapWindow hw, reader.window(from, from + length, from, 10s));
    handover_.push_back(to_ms(hw.max_gap_ns));
  }
  return {};
}

json IdleControl::report() const {
  json j = {{"max_gap_ms", summarize(idle_)}, {"window_ms", window_ms_}, {"rounds", idle_}};
  if (!handover_.empty()) {
    j["handover_length_max_gap_ms"] = summarize(handover_);
    j["handover_length_rounds"] = handover_;
  }
  return j;
}

}  // namespace ferry::bench
