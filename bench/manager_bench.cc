// manager_bench: the end-to-end failover / hot-upgrade blackout benchmark of ferry-snapshotter.
//
// Unlike takeover_bench (which plays the manager itself), this runs the real thing: a
// ferry-snapshotter process with a TOML config in a private temp dir, managing real ferryd
// daemons with real FUSE mounts, driven only through its system API (docs/manager-api.md).
// It builds K sample EROFS images (blob device, 64 KiB chunks), mounts them through
// POST /api/v1/mounts (daemon_mode "dedicated": one daemon per image; "shared": one daemon with
// all K attached), and starts a reader on the first image: a process of its own
// (testkit::ReaderProcess, tests/kit/readers.h) running several threads, each looping 4 KiB
// O_DIRECT preads at random aligned offsets of the image's data files (every one a FUSE request the
// daemon must answer), verifying every byte and recording the steady-clock time of every successful
// completion. Then, round after round:
//
//   crash    `kill -9` of the serving daemon's pid (from GET /api/v1/daemons); the manager sees
//            the death on its pidfd and fails over (hot standby or cold successor).
//            longest gap = the longest gap between consecutive completions (all threads merged)
//              that overlaps [kill, the manager listing the successor RUNNING];
//            kill -> first read = from the kill to the end of that gap: the first read the
//              successor served (a read completing just after the kill, even after the old
//              process's pidfd turned readable, can still be one the dying process answered).
//   upgrade  PUT /api/v1/nydusd/upgrade, alternating between --ferryd and --ferryd-next.
//            hand-over blackout = the longest gap overlapping [the new process took the state
//              over, the old one exited] (from the daemon log's microsecond times);
//            longest gap in the call = the same over [request sent, answer received]: it adds the
//              state fetch, the --version check and the new binary's start-up, during which the
//              old daemon serves alone but shares the CPUs with a starting process.
//   idle     nothing happens: the longest gap in a 200 ms window, the machine's own noise.
//
// Between rounds it polls (with deadlines) until the manager lists the daemon RUNNING with a new
// pid, and, with hot_standby, until the hot standby is back: a live child of the manager started
// with `--upgrade --id ID` whose pid the manager has logged as "hot standby pid N waiting in
// INIT" (the system API has no standby field). The manager's own figures come from
// GET /api/v1/daemons/records (a failover's duration_ms runs from the death notice to the
// successor's start answer). RSS is VmRSS of the manager, the daemon(s) and the hot standby.
//
// Usage: manager_bench [--snapshotter PATH] [--ferryd PATH] [--ferryd-next PATH]
//                      [--daemon-mode dedicated|shared] [--images K] [--hot-standby true|false]
//                      [--rounds N] [--mode crash|upgrade|both] [--threads N] [--out-json FILE]
// Needs root (FUSE mounts) and mkfs.erofs. Everything lives in one temp dir under $TMPDIR (else
// /tmp). On every exit path (errors, SIGINT, SIGTERM, SIGHUP) the reader is stopped, the mounts
// are removed through the API, the manager is stopped (SIGTERM, then SIGKILL), every process still
// running whose command line names the temp dir (daemons, hot standbys) is killed by pid, what is
// left mounted below the temp dir is unmounted and the temp dir removed. If this process is killed
// outright its children get SIGKILL (PR_SET_PDEATHSIG); the daemons (own sessions) are then left
// to bench/manager_bench.sh, which kills by pid whatever still names its work dir.
// Exit status: 0 success, 1 failure, 3 measured but the reader saw errors or wrong bytes (or the
// manager recorded failures), 128+N interrupted by signal N.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/guarded_main.h"
#include "common/proc_files.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "http/http_client.h"
#include "support/bench_support.h"

namespace ferry::bench {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---- the sample images -----------------------------------------------------------------------

// Image 0 (the reader's): 24 small files in 4 directories plus data/f0..f3 (1 MiB + 13.2 KiB,
// 512 KiB + 100 B, 256 KiB, 300,000 B: last reads short). Others: 8 small files (distinct content).
Result<SampleImage> make_image(const TempDir& dir, int index) {
  SampleSpec spec;
  spec.files = index == 0 ? 24 : 8;
  spec.dirs = 4;
  spec.max_size = 40000;
  spec.seed = 1000 + static_cast<uint64_t>(index);
  if (index == 0) {
    spec.named = {{"data/f0", (size_t{1} << 20) + 3 * 4096 + 1234},
                  {"data/f1", (size_t{512} << 10) + 100},
                  {"data/f2", size_t{256} << 10},
                  {"data/f3", 300000}};
  }
  std::error_code ec;
  fs::create_directories(dir / "images", ec);
  return make_sample_image(dir / "images", "img" + std::to_string(index), spec);
}

// ---- the benchmark ---------------------------------------------------------------------------

struct Options {
  std::string snapshotter;
  std::string ferryd;
  std::string ferryd_next;
  std::string daemon_mode = "dedicated";
  int images = 1;
  bool hot_standby = true;
  int rounds = 30;
  std::string mode = "both";
  int threads = 4;
  std::string out_json;
  std::string keep_logs;
};

struct CrashRound {
  double kill_to_first_read = 0;  // kill .. first read completed after the old process was gone
  double longest_gap = 0;         // longest gap overlapping [kill, that read seen]
  double kill_to_gone = 0;        // kill .. the old process's pidfd readable
  double manager_ms = 0;          // the failover record's duration_ms (death notice .. start answered)
  std::string source;             // "hot standby" / "cold successor" (from the record's detail)
  double gap_from = 0;            // the longest gap, ms after the kill
  double gap_to = 0;
  pid_t old_pid = 0;
  pid_t new_pid = 0;
};
struct UpgradeRound {
  double blackout = 0;  // longest gap overlapping [request sent, answer received]
  // Longest gap overlapping the hand-over itself: [the new process began the takeover, the old
  // process exited] from the daemon log's microsecond times (0.1 ms wider before, 1 ms after:
  // its last line precedes the kernel's teardown of it).
  // What it leaves out is the start-up of the new binary (and its --version check), during which
  // the old daemon serves alone. NaN when the log lacks a time.
  double handover = kNaN;
  double handover_window = kNaN;  // the length of that window, ms
  double call_ms = 0;             // the PUT, as seen here
  double manager_ms = 0;          // the answer's duration_ms for the reader's daemon
  double gap_from = 0;            // ms after the request was sent
  double gap_to = 0;
  std::string binary;
  uint64_t window_ops = 0;
  // From the daemon's log (millisecond timestamps), ms after the request was sent: the new
  // process took the state over, started serving; the old one exited. NaN when not found.
  double took_over = kNaN;
  double serving = kNaN;
  double old_exited = kNaN;
  std::string phase;  // where the longest gap started
};

// Microseconds since the epoch of a log line's leading "YYYY-MM-DDTHH:MM:SS.ffffff" (spdlog's
// local time; any number of fraction digits), or -1.
int64_t log_time_us(const std::string& line) {
  std::tm tm{};
  const char* rest = ::strptime(line.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (rest == nullptr || *rest != '.') return -1;
  int64_t us = 0;
  int digits = 0;
  for (++rest; *rest >= '0' && *rest <= '9'; ++rest) {
    if (digits < 6) {
      us = us * 10 + (*rest - '0');
      ++digits;
    }
  }
  if (digits == 0) return -1;
  for (; digits < 6; ++digits) us *= 10;
  tm.tm_isdst = -1;
  const std::time_t t = std::mktime(&tm);
  return t < 0 ? -1 : static_cast<int64_t>(t) * 1000000 + us;
}

int64_t wall_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The first line of `log` containing `needle`, or "".
std::string find_log_line(const std::string& log, const std::string& needle) {
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    if (line.find(needle) != std::string::npos) return line;
  }
  return "";
}

class Bench {
 public:
  Bench(Options options, std::unique_ptr<ReaderProcess> reader)
      : opt_(std::move(options)), reader_(std::move(reader)) {}
  ~Bench() {
    try {
      teardown();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "manager_bench: cleaning up: %s\n", e.what());
    }
  }
  Bench(const Bench&) = delete;
  Bench& operator=(const Bench&) = delete;

  Status setup();
  Status run();
  Status finish();
  [[nodiscard]] json report() const;
  [[nodiscard]] std::string title() const;
  [[nodiscard]] StatsTable table(const json& report) const;
  [[nodiscard]] std::string footer(const json& report) const;
  [[nodiscard]] bool clean() const {
    return reader_errors_ == 0 && reader_mismatches_ == 0 && manager_failures_ == 0 && manager_restarts_ == 0;
  }

 private:
  [[nodiscard]] std::string sys_sock() const { return *dir_ / "system.sock"; }
  [[nodiscard]] std::string manager_log() const { return *dir_ / "manager.log"; }
  [[nodiscard]] std::string mountpoint(int i) const { return *dir_ / ("m/" + std::to_string(i)); }
  [[nodiscard]] bool shared() const { return opt_.daemon_mode == "shared"; }

  Result<json> call(const std::string& method, const std::string& path, const std::string& body,
                    int want_status, std::chrono::milliseconds timeout = 30s) const;
  Result<json> daemon_entry() const;
  struct Ready {
    pid_t pid = 0;
    pid_t standby = 0;
  };
  Result<Ready> wait_ready(pid_t not_pid, std::chrono::milliseconds timeout, bool standby = true);
  Result<json> record_of(const std::string& event, pid_t old_pid, std::chrono::milliseconds timeout) const;
  Status settle();
  Status crash_round();
  Status upgrade_round();
  Status idle_round();
  Error with_log(const Error& e) const;
  json rss() const;
  void teardown();

  Options opt_;
  std::optional<TempDir> dir_;
  std::vector<SampleImage> images_;
  std::unique_ptr<ReaderProcess> reader_;
  Process manager_;
  std::string daemon_id_;  // the reader's daemon
  std::vector<std::string> mounted_;
  std::string current_binary_;
  std::string ferryd_version_;
  std::string next_version_;
  std::string load_start_;
  std::string load_end_;
  std::vector<CrashRound> crash_;
  std::vector<UpgradeRound> upgrade_;
  IdleControl idle_{200, 50};
  json rss_start_;
  json rss_end_;
  json events_;
  uint64_t reader_ops_ = 0;
  uint64_t reader_errors_ = 0;
  uint64_t reader_mismatches_ = 0;
  std::vector<std::string> reader_failures_;
  int manager_failures_ = 0;
  int manager_restarts_ = 0;
  double setup_s_ = 0;
  double mount_s_ = 0;
};

Error Bench::with_log(const Error& e) const {
  std::string text = e.message + "\n--- last lines of " + manager_log() + ":\n" + tail_of(manager_log(), 25);
  if (!daemon_id_.empty()) {
    std::string dlog = *dir_ / ("logs/" + daemon_id_ + ".log");
    text += "--- last lines of " + dlog + ":\n" + tail_of(dlog, 15);
  }
  return Error{e.code, text};
}

Result<json> Bench::call(const std::string& method, const std::string& path, const std::string& body,
                         int want_status, std::chrono::milliseconds timeout) const {
  auto r = http::http_request(sys_sock(), method, path, body, timeout);
  if (!r.ok()) return std::move(r).error().context(method + " " + path);
  if (r->status != want_status) {
    return Error{EIO, method + " " + path + " -> " + std::to_string(r->status) + " " + r->body};
  }
  json j = json::parse(r->body, nullptr, false);
  return j.is_discarded() ? json() : j;
}

Result<json> Bench::daemon_entry() const {
  FERRY_ASSIGN(json all, call("GET", "/api/v1/daemons", {}, 200, 5s));
  for (const auto& d : all) {
    if (d.is_object() && d.value("id", "") == daemon_id_) return d;
  }
  return Error{ENOENT, "daemon " + daemon_id_ + " is not listed by GET /api/v1/daemons"};
}

// Polls until the daemon is RUNNING with a pid other than `not_pid` and, with hot_standby, its
// standby is announced and alive.
Result<Bench::Ready> Bench::wait_ready(pid_t not_pid, std::chrono::milliseconds timeout, bool standby) {
  Ready ready;
  std::string last = "not polled yet";
  bool ok = poll_until(
      [&] {
        auto d = daemon_entry();
        if (!d.ok()) {
          last = d.error().message;
          return false;
        }
        std::string state = d->value("state", "");
        pid_t pid = d->value("pid", 0);
        if (state != "RUNNING" || pid <= 0 || pid == not_pid) {
          last = "state " + state + ", pid " + std::to_string(pid);
          return false;
        }
        ready.pid = pid;
        if (!opt_.hot_standby || !standby) return true;
        // The manager lists a standby once it has taken the state over and waits READY.
        ready.standby = d->value("standby_pid", 0);
        if (ready.standby <= 0 || !process_alive(ready.standby)) {
          last = "RUNNING as pid " + std::to_string(pid) + ", no hot standby ready yet";
          return false;
        }
        return true;
      },
      timeout, 2ms);
  FERRY_TRY(check_interrupt());
  if (!ok) {
    return with_log(Error{ETIMEDOUT, "daemon " + daemon_id_ + " not ready within " +
                                         std::to_string(timeout.count()) + " ms (last seen: " + last + ")"});
  }
  return ready;
}

// The newest record of `event` for the daemon whose old_pid is `old_pid`.
Result<json> Bench::record_of(const std::string& event, pid_t old_pid,
                              std::chrono::milliseconds timeout) const {
  json found;
  std::string last;
  bool ok = poll_until(
      [&] {
        auto r = call("GET", "/api/v1/daemons/records?daemon=" + http::url_encode(daemon_id_) + "&limit=20",
                      {}, 200, 5s);
        if (!r.ok()) {
          last = r.error().message;
          return false;
        }
        for (const auto& rec : *r) {
          if (rec.value("event", "") == event && rec.value("old_pid", 0) == old_pid) found = rec;
        }
        return !found.is_null();
      },
      timeout, 2ms);
  if (!ok)
    return Error{ETIMEDOUT,
                 "no '" + event + "' record with old_pid " + std::to_string(old_pid) + " (" + last + ")"};
  return found;
}

json Bench::rss() const {
  json j;
  j["manager_kib"] = vm_rss_kib(manager_.pid());
  uint64_t daemons = 0;
  uint64_t standbys = 0;
  int nd = 0;
  int ns = 0;
  if (auto all = call("GET", "/api/v1/daemons", {}, 200, 5s); all.ok()) {
    for (const auto& d : *all) {
      pid_t pid = d.value("pid", 0);
      if (pid > 0) {
        daemons += vm_rss_kib(pid);
        ++nd;
      }
    }
  }
  for (pid_t pid : all_pids()) {
    if (parent_of(pid) != manager_.pid()) continue;
    auto args = cmdline_of(pid);
    if (std::find(args.begin(), args.end(), "--upgrade") == args.end()) continue;
    // A child started with --upgrade that is not listed as a daemon: a hot standby.
    bool listed = false;
    if (auto all = call("GET", "/api/v1/daemons", {}, 200, 5s); all.ok()) {
      for (const auto& d : *all) listed = listed || d.value("pid", 0) == pid;
    }
    if (!listed) {
      standbys += vm_rss_kib(pid);
      ++ns;
    }
  }
  j["daemons_kib"] = daemons;
  j["daemons"] = nd;
  j["standbys_kib"] = standbys;
  j["standbys"] = ns;
  return j;
}

Status Bench::setup() {
  int64_t t0 = now_ns();
  load_start_ = loadavg();
  // Short: daemon API sockets live several levels below it (sun_path holds 108 bytes). The
  // manager's daemons and hot standbys name it on their command lines: killed with it.
  FERRY_ASSIGN(dir_, TempDir::create("fmb-", /*kill_leftovers=*/true));
  std::fprintf(stderr, "manager_bench: work dir %s\n", dir_->path().c_str());
  FERRY_TRY(run_command({opt_.ferryd, "--version"}, *dir_ / "version.txt", 10s));
  ferryd_version_ = last_line_of(*dir_ / "version.txt");
  FERRY_TRY(run_command({opt_.ferryd_next, "--version"}, *dir_ / "version-next.txt", 10s));
  next_version_ = last_line_of(*dir_ / "version-next.txt");
  for (int i = 0; i < opt_.images; ++i) {
    FERRY_ASSIGN(SampleImage img, make_image(*dir_, i));
    images_.push_back(std::move(img));
    fs::create_directories(mountpoint(i));
  }
  fs::create_directories(*dir_ / "logs");
  {
    std::ofstream cfg(*dir_ / "config.toml");
    cfg << "version = 1\n"
        << "root = \"" << (*dir_ / "r") << "\"\n"
        << "address = \"" << (*dir_ / "grpc.sock") << "\"\n"
        << "daemon_mode = \"" << opt_.daemon_mode << "\"\n"
        << "[daemon]\n"
        << "nydusd_path = \"" << opt_.ferryd << "\"\n"
        << "recover_policy = \"failover\"\n"
        << "failover_policy = \"resend\"\n"
        << "recover_attempts = 3\n"
        << "hot_standby = " << (opt_.hot_standby ? "true" : "false") << "\n"
        << "[system]\n"
        << "enable = true\n"
        << "address = \"" << sys_sock() << "\"\n"
        << "[log]\n"
        << "level = \"info\"\n"
        << "dir = \"" << (*dir_ / "logs") << "\"\n";
    if (!cfg) return Error{EIO, "cannot write " + (*dir_ / "config.toml")};
  }
  current_binary_ = opt_.ferryd;
  // The manager's stderr (its log, flushed at every info line) is what LogFollower reads.
  FERRY_ASSIGN(manager_, Process::spawn({opt_.snapshotter, "--config", *dir_ / "config.toml"},
                                        child_options(manager_log())));
  bool up = poll_until(
      [&] {
        if (manager_.exited()) return true;
        auto r = http::http_request(sys_sock(), "GET", "/api/v1/daemons", {}, 2s);
        return r.ok() && r->status == 200;
      },
      20s, 5ms);
  FERRY_TRY(check_interrupt());
  if (manager_.exited()) {
    return with_log(
        Error{ECHILD, "ferry-snapshotter exited at start-up (" + describe_status(manager_.status()) + ")"});
  }
  if (!up) return with_log(Error{ETIMEDOUT, "ferry-snapshotter's system socket did not answer within 20 s"});

  int64_t t_mount = now_ns();
  for (int i = 0; i < opt_.images; ++i) {
    json body = {{"mountpoint", mountpoint(i)},
                 {"bootstrap", images_[i].meta},
                 {"config", json::parse(images_[i].config)}};
    auto r = call("POST", "/api/v1/mounts", body.dump(), 201, 60s);
    if (!r.ok()) return with_log(std::move(r).error().context("mounting image " + std::to_string(i)));
    mounted_.push_back(mountpoint(i));
    if (i == 0) daemon_id_ = r->value("daemon_id", "");
  }
  mount_s_ = to_ms(now_ns() - t_mount) / 1000;
  FERRY_TRY(wait_ready(0, 30s));
  // Every thread keeps the data files open with O_DIRECT; 4 KiB reads: every read a FUSE request.
  ReadOptions ro;
  ro.threads = opt_.threads;
  ro.direct = true;
  ro.max_len = 4096;
  ro.kept = -1;
  FERRY_TRY(reader_->start(mountpoint(0), images_[0].tree, images_[0].named, ro));
  FERRY_TRY(reader_->wait_progress(2000, 10s));
  rss_start_ = rss();
  setup_s_ = to_ms(now_ns() - t0) / 1000;
  return {};
}

// Proof that the daemon and its standby are back and the reader is being served.
Status Bench::settle() {
  FERRY_TRY(wait_ready(0, 30s));
  return reader_->wait_progress(300, 10s);
}

Status Bench::crash_round() {
  FERRY_TRY(settle());
  FERRY_ASSIGN(json d, daemon_entry());
  pid_t pid = d.value("pid", 0);
  if (pid <= 0) return Error{ESRCH, "the daemon has no pid"};
  UniqueFd pidfd = pidfd_open(pid);
  if (!pidfd) return errno_error("pidfd_open " + std::to_string(pid));
  CrashRound r;
  r.old_pid = pid;
  int64_t t_kill = now_ns();
  if (::kill(pid, SIGKILL) != 0) return errno_error("kill -9 " + std::to_string(pid));
  pollfd p{pidfd.get(), POLLIN, 0};
  if (::poll(&p, 1, 10'000) <= 0) return Error{ETIMEDOUT, "pid " + std::to_string(pid) + " did not die"};
  int64_t t_gone = now_ns();
  auto first = reader_->wait_completion_after(t_gone, 15s);
  if (!first.ok()) return with_log(std::move(first).error().context("after kill -9 " + std::to_string(pid)));
  // Once the old process is gone only the successor can answer, so the first read completed
  // after that is the successor's, and the outage is the longest gap in [kill, that read] (a
  // read completing between the kill and the end of the process may still be the dying
  // process's answer). Gaps after it are the successor's, not the crash's.
  FERRY_ASSIGN(Ready ready, wait_ready(pid, 30s, false));
  FERRY_ASSIGN(GapWindow w, reader_->window(t_kill, *first - 1, t_gone, 10s));
  auto rec = record_of("failover", pid, 10s);
  if (!rec.ok()) return with_log(std::move(rec).error());
  r.new_pid = ready.pid;
  r.kill_to_first_read = to_ms(w.gap_to - t_kill);
  r.longest_gap = to_ms(w.max_gap_ns);
  r.kill_to_gone = to_ms(t_gone - t_kill);
  r.manager_ms = rec->value("duration_ms", 0.0);
  std::string detail = rec->value("detail", "");
  r.source = detail.find("hot standby") != std::string::npos      ? "hot standby"
             : detail.find("cold successor") != std::string::npos ? "cold successor"
                                                                  : "?";
  r.gap_from = to_ms(w.gap_from - t_kill);
  r.gap_to = to_ms(w.gap_to - t_kill);
  crash_.push_back(r);
  std::fprintf(
      stderr,
      "  crash   %2zu: kill->first read %7.3f ms, longest gap %7.3f ms (at %+.2f ms), kill->gone %6.3f, "
      "manager %6.3f ms (%s)\n",
      crash_.size(), r.kill_to_first_read, r.longest_gap, r.gap_from, r.kill_to_gone, r.manager_ms,
      r.source.c_str());
  return {};
}

Status Bench::upgrade_round() {
  FERRY_TRY(settle());
  FERRY_ASSIGN(json d, daemon_entry());
  pid_t pid = d.value("pid", 0);
  std::string next = current_binary_ == opt_.ferryd ? opt_.ferryd_next : opt_.ferryd;
  json body = {{"nydusd_path", next}};
  UpgradeRound r;
  r.binary = next == opt_.ferryd ? "ferryd" : "ferryd-next";
  int64_t wall_call = wall_us();
  int64_t t_call = now_ns();
  auto answer = http::http_request(sys_sock(), "PUT", "/api/v1/nydusd/upgrade", body.dump(), 60s);
  int64_t t_done = now_ns();
  if (!answer.ok()) return with_log(std::move(answer).error().context("PUT /api/v1/nydusd/upgrade"));
  if (answer->status != 200) {
    return with_log(
        Error{EIO, "PUT /api/v1/nydusd/upgrade -> " + std::to_string(answer->status) + " " + answer->body});
  }
  current_binary_ = next;
  json a = json::parse(answer->body, nullptr, false);
  bool found = false;
  if (a.is_object() && a.contains("daemons")) {
    for (const auto& s : a["daemons"]) {
      if (s.value("id", "") != daemon_id_) continue;
      found = true;
      r.manager_ms = s.value("duration_ms", 0.0);
      if (s.value("old_pid", 0) != pid || s.value("new_pid", 0) == pid)
        return Error{EIO, "the upgrade answer does not show a new process: " + s.dump()};
    }
  }
  if (!found)
    return Error{EIO, "the upgrade answer does not name daemon " + daemon_id_ + ": " + answer->body};
  FERRY_ASSIGN(GapWindow w, reader_->window(t_call, t_done, t_call, 10s));
  r.blackout = to_ms(w.max_gap_ns);
  r.call_ms = to_ms(t_done - t_call);
  r.gap_from = to_ms(w.gap_from - t_call);
  r.gap_to = to_ms(w.gap_to - t_call);
  r.window_ops = w.ops;
  {
    pid_t new_pid = 0;
    for (const auto& st : a["daemons"]) {
      if (st.value("id", "") == daemon_id_) new_pid = st.value("new_pid", 0);
    }
    std::string dlog = read_file(*dir_ / ("logs/" + daemon_id_ + ".log"));
    // ms after the call of the first log line containing `needle`, and the line.
    auto rel = [&](const std::string& needle, std::string* line = nullptr) {
      const std::string hit = find_log_line(dlog, needle);
      if (line != nullptr) *line = hit;
      const int64_t t = hit.empty() ? -1 : log_time_us(hit);
      return t < 0 ? kNaN : static_cast<double>(t - wall_call) / 1000.0;
    };
    std::string took_over_line;
    r.took_over = rel("[" + std::to_string(new_pid) + "]: took over", &took_over_line);
    r.serving = rel("[" + std::to_string(new_pid) + "]: serving with");
    r.old_exited = rel("[" + std::to_string(pid) + "]: exited");
    // The takeover began "in X ms" before its line was written.
    double takeover_ms = kNaN;
    if (const size_t at = took_over_line.find(") in "); at != std::string::npos) {
      takeover_ms = std::strtod(took_over_line.c_str() + at + 5, nullptr);
    }
    const double takeover_began = r.took_over - takeover_ms;
    // The window: from the takeover's beginning to the old process's exit. Its last log line
    // comes just before the kernel tears it down, which is given 1 ms; 0.1 ms either side for
    // the log's clock against this process's.
    if (!std::isnan(takeover_began) && !std::isnan(r.old_exited)) {
      const int64_t from = t_call + static_cast<int64_t>((takeover_began - 0.1) * kNsPerMs);
      const int64_t to = t_call + static_cast<int64_t>((r.old_exited + 1) * kNsPerMs);
      FERRY_ASSIGN(GapWindow hw, reader_->window(from, to, from, 10s));
      r.handover = to_ms(hw.max_gap_ns);
      r.handover_window = to_ms(to - from);
    }
    if (std::isnan(takeover_began) || std::isnan(r.serving) || std::isnan(r.old_exited)) {
      r.phase = "unknown";
    } else if (r.gap_from < takeover_began - 0.1) {
      r.phase = "before the takeover";
    } else if (r.gap_from < r.serving + 0.1) {
      r.phase = "takeover and start";
    } else if (r.gap_from < r.old_exited + 1) {
      r.phase = "old process exiting";
    } else {
      r.phase = "after the switch";
    }
  }
  upgrade_.push_back(r);
  std::fprintf(
      stderr,
      "  upgrade %2zu: blackout %7.3f ms (at %.1f ms of a %.1f ms call; manager %.1f ms) -> %s, %llu reads "
      "in the call\n",
      upgrade_.size(), r.blackout, r.gap_from, r.call_ms, r.manager_ms, r.binary.c_str(),
      static_cast<unsigned long long>(r.window_ops));
  std::fprintf(stderr,
               "              took over at %.1f, serving at %.1f, old exited at %.1f ms: gap %s; hand-over "
               "%.3f ms\n",
               r.took_over, r.serving, r.old_exited, r.phase.c_str(), r.handover);
  return {};
}

Status Bench::idle_round() {
  FERRY_TRY(settle());
  return idle_.round(*reader_, upgrade_.empty() ? kNaN : upgrade_.back().handover_window);
}

Status Bench::run() {
  return run_rounds(opt_.rounds,
                    {{opt_.mode == "crash" || opt_.mode == "both", [this] { return crash_round(); }},
                     {opt_.mode == "upgrade" || opt_.mode == "both", [this] { return upgrade_round(); }}},
                    [this] { return idle_round(); });
}

Status Bench::finish() {
  FERRY_TRY(settle());
  rss_end_ = rss();
  if (!reader_->stop(10s)) return Error{ETIMEDOUT, "the reader did not stop"};
  reader_ops_ = reader_->board().ops();
  reader_errors_ = reader_->board().errors.load();
  reader_mismatches_ = reader_->board().mismatches.load();
  reader_failures_ = reader_->board().failure_list();
  load_end_ = loadavg();
  FERRY_ASSIGN(json recs, call("GET", "/api/v1/daemons/records?limit=100000", {}, 200, 10s));
  events_ = json::object();
  for (const auto& rec : recs) {
    std::string ev = rec.value("event", "?");
    events_[ev] = events_.value(ev, 0) + 1;
    if (ev == "failure" || !rec.value("ok", true)) {
      ++manager_failures_;
      std::fprintf(stderr, "manager_bench: the manager recorded a failure: %s\n", rec.dump().c_str());
    }
    if (ev == "restart" || ev == "rollback") ++manager_restarts_;
  }
  return {};
}

// Runs on every exit path: stops the reader while the daemon still serves, removes the mounts
// through the API, stops the manager, then kills by pid whatever names the temp dir (a shared
// daemon outlives its last mount and the manager), unmounts what is left and removes the dir.
void Bench::teardown() {
  if (reader_) reader_->request_stop();
  if (reader_ && !reader_->stop(5s)) {
    // Blocked on a mount nobody serves: kill the manager and daemons (their /dev/fuse fds go,
    // the kernel aborts the connection) and force the mounts.
    std::fprintf(stderr, "manager_bench: the reader is stuck; aborting the FUSE connections\n");
    manager_.kill_and_reap();
    if (dir_) dir_->kill_leftovers();
    if (dir_) {
      for (const auto& m : mounts_at_or_below(dir_->path())) ::umount2(m.c_str(), MNT_FORCE);
    }
    reader_->kill();
  }
  reader_.reset();
  if (manager_.valid() && !manager_.exited()) {
    for (auto it = mounted_.rbegin(); it != mounted_.rend(); ++it) {
      auto r = http::http_request(sys_sock(), "DELETE", "/api/v1/mounts?mountpoint=" + http::url_encode(*it),
                                  {}, 20s);
      if (!r.ok() || r->status != 204) {
        std::fprintf(
            stderr, "manager_bench: DELETE /api/v1/mounts %s: %s\n", it->c_str(),
            r.ok() ? (std::to_string(r->status) + " " + r->body).c_str() : r.error().message.c_str());
      }
    }
    // A shared daemon outlives its last mount, and every daemon outlives the manager's SIGTERM
    // (they keep serving): stop them by pid (SIGTERM: they unmount and exit) once it is gone.
    std::vector<pid_t> daemons;
    if (auto all = call("GET", "/api/v1/daemons", {}, 200, 5s); all.ok()) {
      for (const auto& d : *all) {
        if (pid_t pid = d.value("pid", 0); pid > 0) daemons.push_back(pid);
      }
    }
    ::kill(manager_.pid(), SIGTERM);
    if (manager_.wait_exit(20s)) {
      for (pid_t pid : daemons) ::kill(pid, SIGTERM);
      for (pid_t pid : daemons) {
        if (!wait_gone(pid, 10s))
          std::fprintf(stderr, "manager_bench: ferryd %d did not exit on SIGTERM\n", pid);
      }
    }
    if (!manager_.wait_exit(20s)) {
      std::fprintf(stderr, "manager_bench: ferry-snapshotter did not exit after SIGTERM; killing it\n");
    }
  }
  manager_.kill_and_reap();
  mounted_.clear();
  if (dir_ && !opt_.keep_logs.empty()) {
    std::error_code ec;
    fs::create_directories(opt_.keep_logs, ec);
    fs::copy(*dir_ / "logs", opt_.keep_logs,
             fs::copy_options::recursive | fs::copy_options::overwrite_existing, ec);
    fs::copy_file(manager_log(), opt_.keep_logs + "/manager.log", fs::copy_options::overwrite_existing, ec);
    if (ec)
      std::fprintf(stderr, "manager_bench: copying the logs to '%s': %s\n", opt_.keep_logs.c_str(),
                   ec.message().c_str());
  }
  dir_.reset();  // kills leftovers by pid, unmounts, removes
}

json Bench::report() const {
  json j;
  j["config"] = {{"daemon_mode", opt_.daemon_mode},
                 {"images", opt_.images},
                 {"hot_standby", opt_.hot_standby},
                 {"rounds", opt_.rounds},
                 {"mode", opt_.mode},
                 {"reader_threads", opt_.threads},
                 {"ferryd_version", ferryd_version_},
                 {"ferryd_next_version", next_version_},
                 {"image0_files", images_.empty() ? 0 : images_[0].files.size()},
                 {"image0_bytes", images_.empty() ? 0 : images_[0].bytes},
                 {"setup_s", setup_s_},
                 {"mount_s", mount_s_}};
  j["loadavg_start"] = load_start_;
  j["loadavg_end"] = load_end_;
  if (!crash_.empty()) {
    json c;
    c["kill_to_first_read_ms"] = summarize(column(crash_, &CrashRound::kill_to_first_read));
    c["longest_gap_ms"] = summarize(column(crash_, &CrashRound::longest_gap));
    c["kill_to_gone_ms"] = summarize(column(crash_, &CrashRound::kill_to_gone));
    c["manager_failover_ms"] = summarize(column(crash_, &CrashRound::manager_ms));
    json sources = json::object();
    json rounds = json::array();
    for (const auto& r : crash_) {
      sources[r.source] = sources.value(r.source, 0) + 1;
      rounds.push_back({{"kill_to_first_read_ms", r.kill_to_first_read},
                        {"longest_gap_ms", r.longest_gap},
                        {"kill_to_gone_ms", r.kill_to_gone},
                        {"manager_failover_ms", r.manager_ms},
                        {"source", r.source},
                        {"gap_ms_after_kill", {r.gap_from, r.gap_to}},
                        {"old_pid", r.old_pid},
                        {"new_pid", r.new_pid}});
    }
    c["sources"] = sources;
    c["rounds"] = rounds;
    j["crash"] = c;
  }
  if (!upgrade_.empty()) {
    json u;
    u["blackout_ms"] = summarize(column(upgrade_, &UpgradeRound::blackout));
    std::vector<double> handover;
    for (const auto& r : upgrade_) {
      if (!std::isnan(r.handover)) handover.push_back(r.handover);
    }
    u["handover_ms"] = summarize(handover);
    u["call_ms"] = summarize(column(upgrade_, &UpgradeRound::call_ms));
    u["manager_upgrade_ms"] = summarize(column(upgrade_, &UpgradeRound::manager_ms));
    json rounds = json::array();
    for (const auto& r : upgrade_) {
      rounds.push_back({{"blackout_ms", r.blackout},
                        {"handover_ms", std::isnan(r.handover) ? json() : json(r.handover)},
                        {"call_ms", r.call_ms},
                        {"manager_upgrade_ms", r.manager_ms},
                        {"gap_ms_after_call", {r.gap_from, r.gap_to}},
                        {"binary", r.binary},
                        {"window_ops", r.window_ops},
                        {"phase", r.phase},
                        {"events_ms_after_call",
                         {{"took_over", std::isnan(r.took_over) ? json() : json(r.took_over)},
                          {"serving", std::isnan(r.serving) ? json() : json(r.serving)},
                          {"old_exited", std::isnan(r.old_exited) ? json() : json(r.old_exited)}}}});
    }
    u["rounds"] = rounds;
    j["upgrade"] = u;
  }
  j["idle"] = idle_.report();
  j["reader"] = {{"ops", reader_ops_},
                 {"errors", reader_errors_},
                 {"mismatches", reader_mismatches_},
                 {"failures", reader_failures_}};
  j["rss_start"] = rss_start_;
  j["rss_end"] = rss_end_;
  j["events"] = events_;
  j["manager_failures"] = manager_failures_;
  return j;
}

std::string Bench::title() const {
  return "manager_bench: " + opt_.daemon_mode + " daemon, " + std::to_string(opt_.images) +
         " image(s), hot_standby " + (opt_.hot_standby ? "true" : "false") + ", " +
         std::to_string(opt_.rounds) + " rounds, mode " + opt_.mode + ", " + std::to_string(opt_.threads) +
         " reader threads; " + ferryd_version_;
}

// The summary table: printed by run_benchmark and pasted into docs/benchmarks.md by
// bench/manager_bench_report.py (rows not measured in this mode are left out).
StatsTable Bench::table(const json& j) const {
  return StatsTable::of(
      j, {
             {"crash", "kill_to_first_read_ms", "**crash: kill -> first read**"},
             {"crash", "longest_gap_ms", "crash: longest gap between reads around the kill"},
             {"crash", "kill_to_gone_ms", "crash: kill -> old process gone (pidfd)"},
             {"crash", "manager_failover_ms", "crash: manager's failover (death notice -> start answered)"},
             {"upgrade", "handover_ms", "**upgrade: hand-over blackout (takeover .. old process exited)**"},
             {"upgrade", "blackout_ms", "upgrade: longest gap during the whole call"},
             {"upgrade", "call_ms", "upgrade: `PUT /api/v1/nydusd/upgrade` call"},
             {"upgrade", "manager_upgrade_ms", "upgrade: manager's duration_ms for the daemon"},
             {"idle", "max_gap_ms", "idle: longest gap in 200 ms, nothing happening"},
             {"idle", "handover_length_max_gap_ms",
              "idle: longest gap in a window as long as the round's hand-over (the control)"},
         });
}

std::string Bench::footer(const json& j) const {
  std::string out;
  char buf[512];
  if (j.contains("crash")) out += "crash: successors: " + j["crash"]["sources"].dump() + "\n";
  std::snprintf(buf, sizeof buf, "reader: %llu reads, %llu errors, %llu wrong bytes\n",
                static_cast<unsigned long long>(reader_ops_), static_cast<unsigned long long>(reader_errors_),
                static_cast<unsigned long long>(reader_mismatches_));
  out += buf;
  for (const auto& f : reader_failures_) out += "  " + f + "\n";
  out += "manager records: " + events_.dump() + " (" + std::to_string(manager_failures_) + " failure(s))\n";
  auto rss_line = [&](const char* when, const json& r) {
    if (!r.is_object()) return;
    std::snprintf(
        buf, sizeof buf, "VmRSS %s: manager %.1f MiB, %d daemon(s) %.1f MiB, %d hot standby(s) %.1f MiB\n",
        when, r.value("manager_kib", 0) / 1024.0, r.value("daemons", 0), r.value("daemons_kib", 0) / 1024.0,
        r.value("standbys", 0), r.value("standbys_kib", 0) / 1024.0);
    out += buf;
  };
  rss_line("after setup", rss_start_);
  rss_line("after the runs", rss_end_);
  out += "load average: " + load_start_ + " at the start, " + load_end_ + " at the end\n";
  return out;
}

std::string next_to_self(const std::string& name) {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? name : (self.parent_path() / name).string();
}

int run_main(int argc, char** argv) {
  set_program_name("manager_bench");
  CLI::App app{
      "manager_bench: how long readers of a ferry-snapshotter mount wait while its ferryd is killed "
      "(failover) "
      "and during PUT /api/v1/nydusd/upgrade. Needs root and mkfs.erofs."};
  Options opt;
  opt.snapshotter = next_to_self("ferry-snapshotter");
  opt.ferryd = next_to_self("ferryd");
  opt.ferryd_next = next_to_self("ferryd-next");
  std::string hot = "true";
  app.add_option("--snapshotter", opt.snapshotter, "The ferry-snapshotter binary")->capture_default_str();
  app.add_option("--ferryd", opt.ferryd, "The ferryd binary (the manager's nydusd_path)")
      ->capture_default_str();
  app.add_option("--ferryd-next", opt.ferryd_next, "The binary upgrades alternate with")
      ->capture_default_str();
  app.add_option("--daemon-mode", opt.daemon_mode, "daemon_mode of the manager")
      ->capture_default_str()
      ->check(CLI::IsMember({"dedicated", "shared"}));
  app.add_option("--images", opt.images,
                 "Images mounted through POST /api/v1/mounts; the reader reads the first")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--hot-standby", hot, "[daemon] hot_standby")
      ->capture_default_str()
      ->check(CLI::IsMember({"true", "false"}));
  app.add_option("--rounds", opt.rounds, "Rounds of each kind")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--mode", opt.mode, "crash, upgrade or both (interleaved)")
      ->capture_default_str()
      ->check(CLI::IsMember({"crash", "upgrade", "both"}));
  app.add_option("--threads", opt.threads, "Reader threads")
      ->capture_default_str()
      ->check(CLI::Range(1, ReadBoard::kMaxThreads));
  app.add_option("--out-json", opt.out_json, "Write the results (summaries and every round) as JSON here");
  app.add_option("--keep-logs", opt.keep_logs,
                 "Copy the manager's and the daemons' logs into this directory at the end");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  opt.hot_standby = hot == "true";
  for (auto* p : {&opt.snapshotter, &opt.ferryd, &opt.ferryd_next}) {
    if (::access(p->c_str(), X_OK) != 0) {
      std::fprintf(stderr, "manager_bench: error: '%s' is not executable\n", p->c_str());
      return 1;
    }
    *p = fs::absolute(*p).lexically_normal().string();
  }
  if (::geteuid() != 0)
    std::fprintf(stderr, "manager_bench: warning: not root; mounting will probably fail\n");

  return run_benchmark<Bench>(opt, opt.out_json,
                              "the reader saw errors or wrong bytes, or the manager recorded failures");
}

}  // namespace
}  // namespace ferry::bench

int main(int argc, char** argv) {
  return ferry::guarded_main("manager_bench", [&] { return ferry::bench::run_main(argc, argv); });
}
