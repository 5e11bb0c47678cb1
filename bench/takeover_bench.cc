// takeover_bench: the failover / hot-upgrade blackout benchmark for ferryd.
//
// This process plays the manager. It builds a small sample EROFS image (blob device, 64 KiB
// chunks) in a private temp dir, holds the supervisor socket in-process (ferry::ipc::Supervisor)
// and starts ferryd: a dedicated daemon serving the image at the root (--images 1) or a shared
// daemon with K copies of it attached through POST /api/v1/mount (--images K > 1). A reader (a
// process of its own: testkit::ReaderProcess, tests/kit/readers.h) keeps one file open with
// O_DIRECT and loops 4 KiB preads at varying aligned offsets (every one a FUSE request the daemon
// must answer), verifies every byte against the source and records the steady-clock time of every
// successful completion. Then, round after round, the daemon is replaced under the reader:
//
//   crash    kill -9 the daemon and reap it, start `ferryd --upgrade` at once, poll it until INIT,
//            takeover (Supervisor::send + PUT fuse/takeover), PUT start; then, once the window
//            has closed, save again.
//            blackout = longest gap between consecutive completions in [kill - 50 ms, start + 200 ms]
//            also: kill -> the first read completed after the takeover call (only the successor
//            can have served it)
//   standby  a crash with a prepared hot standby, as ferry-snapshotter runs one: long before the
//            kill `ferryd --upgrade` is started, takes the saved state over and is told
//            PUT start?when=predecessor-exits (it waits READY); on the kill the harness only
//            reaps: the standby starts by itself (with the resend) when the daemon exits.
//            blackout = longest gap in [kill - 50 ms, standby seen RUNNING + 200 ms];
//            kill -> the first read completed after the dead daemon was reaped.
//   upgrade  save (PUT fuse/sendfd), start `ferryd --upgrade`, takeover, start (the new daemon
//            serves alongside the old one), PUT exit on the old one, wait for it to exit 0.
//            blackout = longest gap in [save start, old daemon's exit + 100 ms]
//   idle     nothing happens: the longest gap in a 300 ms window, the machine's own noise.
//
// A gap counts when it overlaps the window (a read still blocked at the window's end counts in
// full). "takeover+start" is measured here, around the API calls: from the moment the
// PUT fuse/takeover request is issued to the 204 of PUT start. The calls inside a switch (sendfd,
// takeover, start, exit) are raw HTTP/1.1 requests on the unix socket (fast_call), and a new
// daemon counts as in INIT once its API socket accepts connections (wait_listening), so the
// harness adds no client set-up and no poll interval to what it measures.
//
// Usage: takeover_bench [--ferryd PATH] [--rounds N] [--images K]
//                       [--mode crash|standby|upgrade|both|all]
//                       [--out-json FILE]
// Needs root (FUSE mounts) and mkfs.erofs. Everything lives in one temp dir under $TMPDIR (else
// /tmp). On any exit path (errors, SIGINT, SIGTERM, SIGHUP) every ferryd it started is killed by
// pid and reaped, the mount is unmounted (lazily as a last resort) and the temp dir removed;
// if this process is killed outright, its children get SIGKILL (PR_SET_PDEATHSIG).
// Exit status: 0 success, 1 failure, 3 measured but the reader saw errors or wrong bytes,
// 128+N interrupted by signal N.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/guarded_main.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "http/http_client.h"
#include "ipc/supervisor.h"
#include "support/bench_support.h"

namespace ferry::bench {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

// ---- the sample image ------------------------------------------------------------------------

// 40 files, ~2.5 MiB: 36 small ones in 4 directories, three of 256 KiB and the reader's file (1 MiB
// + 3 blocks + a partial block, so its last read is short).
const char* const kReaderFile = "data/big.bin";
constexpr size_t kReaderFileBytes = (size_t{1} << 20) + 3 * 4096 + 1234;

Result<SampleImage> make_image(const TempDir& dir) {
  SampleSpec spec;
  spec.files = 36;
  spec.dirs = 4;
  spec.max_size = 40000;
  spec.seed = 42;
  spec.named = {{kReaderFile, kReaderFileBytes},
                {"d1/big0", size_t{256} << 10},
                {"d2/big1", size_t{256} << 10},
                {"d3/big2", size_t{256} << 10}};
  return make_sample_image(dir.path(), "image", spec);
}

// ---- the daemon's API ------------------------------------------------------------------------

// One API call that must answer 2xx.
Status api_ok(const std::string& sock, const std::string& method, const std::string& path,
              const std::string& body = {}) {
  auto r = http::http_request(sock, method, path, body, 20s);
  if (!r.ok()) return std::move(r).error().context(method + " " + path);
  if (r->status / 100 != 2) {
    return Error{EIO, method + " " + path + " -> " + std::to_string(r->status) + " " + r->body};
  }
  return {};
}

// One bodiless API call on the switch's critical path, over a raw HTTP/1.1 request on the unix
// socket: no client library to set up per call (a curl handle costs more than the call itself
// here). Answers the HTTP status; the daemon closes the connection after its answer.
Result<int> fast_call(const std::string& sock, const char* method, const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return errno_error("socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (sock.size() >= sizeof addr.sun_path) return Error{ENAMETOOLONG, "socket path too long: " + sock};
  std::memcpy(addr.sun_path, sock.c_str(), sock.size() + 1);
  timeval tv{20, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {  // NOLINT: sockaddr API
    return errno_error("connect '" + sock + "'");
  }
  std::string req = std::string(method) + " " + path +
                    " HTTP/1.1\r\nHost: ferryd\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  if (::send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    return errno_error(std::string(method) + " " + path + ": send");
  }
  std::string resp;
  char buf[4096];
  while (true) {
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error(std::string(method) + " " + path + ": recv");
    if (n == 0) break;
    resp.append(buf, static_cast<size_t>(n));
    // The status line is all we need once the headers are complete and the body (if any) is in.
    auto hdr_end = resp.find("\r\n\r\n");
    if (hdr_end == std::string::npos) continue;
    size_t body_len = 0;
    auto cl = resp.find("Content-Length: ");
    if (cl == std::string::npos) cl = resp.find("content-length: ");
    if (cl != std::string::npos && cl < hdr_end)
      body_len = std::strtoull(resp.c_str() + cl + 16, nullptr, 10);
    if (resp.size() >= hdr_end + 4 + body_len) break;
  }
  if (resp.rfind("HTTP/1.", 0) != 0 || resp.size() < 12) {
    return Error{EPROTO,
                 std::string(method) + " " + path + ": not an HTTP answer: '" + resp.substr(0, 80) + "'"};
  }
  int status = 0;
  std::from_chars(resp.data() + 9, resp.data() + resp.size(), status);
  if (status / 100 != 2) {
    auto body = resp.find("\r\n\r\n");
    return Error{EIO, std::string(method) + " " + path + " -> " + std::to_string(status) + " " +
                          (body == std::string::npos ? "" : resp.substr(body + 4))};
  }
  return status;
}

Status fast_ok(const std::string& sock, const char* method, const std::string& path) {
  auto r = fast_call(sock, method, path);
  if (!r.ok()) return std::move(r).error();
  return {};
}

// True once something listens on the unix socket `path`.
bool listening(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (!fd || path.size() >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;  // NOLINT: sockaddr API
}

// The daemon's "state" field, or "" when it does not answer (yet).
std::string daemon_state(const std::string& sock) {
  auto r = http::http_request(sock, "GET", "/api/v1/daemon", {}, 2s);
  if (!r.ok() || r->status != 200) return "";
  auto j = json::parse(r->body, nullptr, false);
  if (j.is_discarded() || !j.contains("state") || !j["state"].is_string()) return "";
  return j["state"].get<std::string>();
}

// VmRSS of a live process in KiB.
Result<uint64_t> live_rss_kib(pid_t pid) {
  if (uint64_t kib = vm_rss_kib(pid); kib != 0) return kib;
  return Error{ENOENT, "no VmRSS for pid " + std::to_string(pid)};
}

// ---- the benchmark ---------------------------------------------------------------------------

struct Options {
  std::string ferryd;
  int rounds = 30;
  int images = 1;
  std::string mode = "both";
  std::string out_json;
  int successor_nice = 19;
};

// Per-round timings, ms.
struct CrashRound {
  double blackout = 0;
  double kill_to_first_read = 0;
  double kill_to_reaped = 0;
  double successor_to_init = 0;      // reaped .. `ferryd --upgrade` spawned and answering INIT
  double takeover = 0;               // PUT fuse/takeover issued .. answered (state received, images reopened)
  double start = 0;                  // PUT start issued .. 204
  double takeover_start = 0;         // takeover issued .. start's 204
  double inside = 0;                 // takeover + start as ferryd logs them (inside the process)
  double kill_to_started = 0;        // kill .. start's 204
  double started_to_first_read = 0;  // start's 204 .. the successor's first read (negative: before the 204)
  uint64_t window_ops = 0;
  double gap_from = 0;  // the longest gap, ms after the kill
  double gap_to = 0;
};
struct UpgradeRound {          // NOLINT(bugprone-exception-escape): implicit members of json
  double blackout = 0;         // longest gap overlapping [successor spawned, old daemon's exit + 100 ms]
  double handover = 0;         // longest gap overlapping [takeover call, old daemon's exit]
  double handover_from = 0;    // where it starts, ms after the successor was spawned
  double handover_window = 0;  // its length: takeover call .. old daemon's exit
  double save = 0;
  double successor_to_init = 0;
  double takeover = 0;
  double start = 0;
  double takeover_start = 0;
  double inside = 0;
  double exit = 0;  // PUT exit issued .. the old process has exited
  double window = 0;
  uint64_t window_ops = 0;
  // ms after the successor was spawned: the longest gap and the events
  double gap_from = 0;
  double gap_to = 0;
  json events;
};

class Bench {
 public:
  Bench(Options options, std::unique_ptr<ReaderProcess> reader)
      : opt_(std::move(options)), reader_(std::move(reader)) {}
  ~Bench() { teardown(); }
  Bench(const Bench&) = delete;
  Bench& operator=(const Bench&) = delete;

  Status setup();
  Status run();
  Status finish();
  [[nodiscard]] json report() const;
  [[nodiscard]] std::string title() const;
  [[nodiscard]] StatsTable table(const json& report) const;
  [[nodiscard]] std::string footer(const json& report) const;
  [[nodiscard]] bool clean() const { return reader_errors_ == 0 && reader_mismatches_ == 0; }

 private:
  [[nodiscard]] std::string sock(int gen) const { return *dir_ / ("api-" + std::to_string(gen) + ".sock"); }
  [[nodiscard]] std::string log(int gen) const { return *dir_ / ("ferryd-" + std::to_string(gen) + ".log"); }
  [[nodiscard]] bool shared() const { return opt_.images > 1; }
  [[nodiscard]] std::vector<std::string> daemon_argv(int gen, bool upgrade) const;
  Result<Process> spawn_daemon(int gen, bool upgrade);
  Result<Process> spawn_background_successor(int gen);
  Status wait_state(int gen, Process& p, const std::string& want, std::chrono::milliseconds timeout);
  Status wait_listening(int gen, Process& p, std::chrono::milliseconds timeout);
  Status save(int gen);
  struct Switch {
    int64_t takeover_call = 0;
    int64_t taken_over = 0;
    int64_t started = 0;
  };
  Status takeover(int gen, Switch& s);  // Supervisor::send + PUT fuse/takeover
  // Takeover + start of generation `gen` as ferryd itself timed them: the sum of the last
  // "took over ... in X ms" and "start took Y ms" in its log (ferryd flushes info lines).
  Result<double> logged_takeover_start(int gen) const;
  Status takeover_and_start(int gen, Switch& s);
  Status settle();
  Status crash_round();
  Status standby_round();
  Status upgrade_round();
  Status idle_round();
  Status with_log(Status st, int gen) const;
  void teardown();

  Options opt_;
  std::optional<TempDir> dir_;
  SampleImage image_;
  std::string mnt_;
  std::unique_ptr<ipc::Supervisor> supervisor_;
  Process daemon_;
  int gen_ = 0;
  std::unique_ptr<ReaderProcess> reader_;
  std::string ferryd_version_;
  std::string load_start_;
  std::string load_end_;
  std::vector<CrashRound> crash_;
  std::vector<CrashRound> standby_;  // crash rounds with a hot standby successor
  std::vector<UpgradeRound> upgrade_;
  IdleControl idle_{300, 100};
  uint64_t rss_start_kib_ = 0;
  uint64_t rss_end_kib_ = 0;
  size_t state_bytes_ = 0;
  uint64_t reader_ops_ = 0;
  uint64_t reader_errors_ = 0;
  uint64_t reader_mismatches_ = 0;
  std::vector<std::string> reader_failures_;
  int final_exit_status_ = -1;
};

Status Bench::with_log(Status st, int gen) const {
  if (st.ok()) return st;
  return Error{st.error().code,
               st.error().message + "\n--- last lines of " + log(gen) + ":\n" + tail_of(log(gen), 20)};
}

std::vector<std::string> Bench::daemon_argv(int gen, bool upgrade) const {
  std::vector<std::string> argv = {opt_.ferryd, "fuse", "--mountpoint", mnt_,           "--apisock",
                                   sock(gen),   "--id", "bench",        "--supervisor", *dir_ / "sup.sock"};
  if (!shared()) {
    for (const auto& a : {"--bootstrap", image_.meta.c_str(), "--config", image_.config_path.c_str()}) {
      argv.emplace_back(a);
    }
  }
  if (upgrade) argv.emplace_back("--upgrade");
  return argv;
}

Result<Process> Bench::spawn_daemon(int gen, bool upgrade) {
  return Process::spawn(daemon_argv(gen, upgrade), child_options(log(gen)));
}

Result<Process> Bench::spawn_background_successor(int gen) {
  // As ferry-snapshotter starts an upgrade's successor or a hot standby: at a low priority, so
  // that its start-up yields the CPUs to the daemon that serves and its readers; ferryd returns
  // to FERRY_SERVING_NICE (set in main) when it starts serving.
  return Process::spawn(daemon_argv(gen, true), child_options(log(gen), opt_.successor_nice));
}

Status Bench::wait_state(int gen, Process& p, const std::string& want, std::chrono::milliseconds timeout) {
  int64_t deadline = now_ns() + std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count();
  std::string path = sock(gen);
  std::string last;
  while (true) {
    FERRY_TRY(check_interrupt());
    if (p.exited()) {
      return with_log(Error{ECHILD, "ferryd generation " + std::to_string(gen) + " exited (" +
                                        describe_status(p.status()) + ") before reaching " + want},
                      gen);
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
      last = daemon_state(path);
      if (last == want) return {};
    }
    if (now_ns() > deadline) {
      std::string what = "ferryd generation " + std::to_string(gen) + " did not reach " + want;
      what += " (state '" + last + "')";
      return with_log(Error{ETIMEDOUT, what}, gen);
    }
    std::this_thread::sleep_for(last.empty() ? 200us : 1ms);
  }
}

// A successor started with --upgrade is in INIT as soon as its API socket listens: connect() is
// retried every 100 us (a refused or missing socket fails at once), which adds at most 0.1 ms to
// the measured switch.
Status Bench::wait_listening(int gen, Process& p, std::chrono::milliseconds timeout) {
  int64_t deadline = now_ns() + std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count();
  std::string path = sock(gen);
  // Polled, not waited for with inotify: measured side by side on this 2-vCPU guest, a harness
  // blocked in poll() on inotify saw the successor reach INIT in 11.5 ms (median) against 5.3 ms
  // when polling; idle vCPUs are slow to wake here.
  while (!listening(path)) {
    FERRY_TRY(check_interrupt());
    if (p.exited()) {
      return with_log(Error{ECHILD, "ferryd generation " + std::to_string(gen) + " exited (" +
                                        describe_status(p.status()) + ") before listening"},
                      gen);
    }
    if (now_ns() > deadline) {
      return with_log(
          Error{ETIMEDOUT, "ferryd generation " + std::to_string(gen) + " did not listen on " + path}, gen);
    }
    std::this_thread::sleep_for(100us);
  }
  return {};
}

Status Bench::save(int gen) {
  auto r = supervisor_->receive([&] { return fast_ok(sock(gen), "PUT", "/api/v1/daemon/fuse/sendfd"); }, 20s);
  if (!r.ok())
    return with_log(std::move(r).error().context("save of generation " + std::to_string(gen)), gen);
  return {};
}

Status Bench::takeover(int gen, Switch& s) {
  auto r = supervisor_->send(
      [&] {
        s.takeover_call = now_ns();
        return fast_ok(sock(gen), "PUT", "/api/v1/daemon/fuse/takeover");
      },
      20s);
  if (!r.ok())
    return with_log(std::move(r).error().context("takeover by generation " + std::to_string(gen)), gen);
  s.taken_over = now_ns();
  return {};
}

Result<double> Bench::logged_takeover_start(int gen) const {
  const std::string text = read_file(log(gen));
  // The number after `before_number` on the last line containing `key`.
  auto last_ms = [&](const std::string& key, const std::string& before_number) -> std::optional<double> {
    size_t at = text.rfind(key);
    if (at == std::string::npos) return std::nullopt;
    at = text.find(before_number, at);
    if (at == std::string::npos) return std::nullopt;
    return std::strtod(text.c_str() + at + before_number.size(), nullptr);
  };
  auto takeover = last_ms("took over '", " in ");
  auto start = last_ms("start took ", "start took ");
  if (!takeover || !start) {
    return with_log(
               Error{EPROTO, "ferryd generation " + std::to_string(gen) + " logged no takeover/start time"},
               gen)
        .error();
  }
  return *takeover + *start;
}

Status Bench::takeover_and_start(int gen, Switch& s) {
  FERRY_TRY(takeover(gen, s));
  FERRY_TRY(with_log(fast_ok(sock(gen), "PUT", "/api/v1/daemon/start"), gen));
  s.started = now_ns();
  return {};
}

Status Bench::setup() {
  load_start_ = loadavg();
  FERRY_ASSIGN(dir_, TempDir::create("ferry-takeover-bench-"));
  std::fprintf(stderr, "takeover_bench: work dir %s\n", dir_->path().c_str());
  FERRY_TRY(run_command({opt_.ferryd, "--version"}, *dir_ / "version.txt", 10s));
  ferryd_version_ = last_line_of(*dir_ / "version.txt");
  FERRY_ASSIGN(image_, make_image(*dir_));
  mnt_ = *dir_ / "mnt";
  fs::create_directories(mnt_);
  FERRY_ASSIGN(supervisor_, ipc::Supervisor::listen(*dir_ / "sup.sock"));

  FERRY_ASSIGN(daemon_, spawn_daemon(0, false));
  FERRY_TRY(wait_state(0, daemon_, "RUNNING", 30s));
  std::string reader_root = mnt_;
  if (shared()) {
    for (int i = 0; i < opt_.images; ++i) {
      json body = {{"source", image_.meta}, {"config", image_.config}};
      FERRY_TRY(with_log(
          api_ok(sock(0), "POST", "/api/v1/mount?mountpoint=" + http::url_encode("/i" + std::to_string(i)),
                 body.dump()),
          0));
    }
    reader_root = mnt_ + "/i0";
  }
  FERRY_TRY(save(0));
  // One thread, one file kept open with O_DIRECT, 4 KiB reads: every read a FUSE request.
  ReadOptions ro;
  ro.threads = 1;
  ro.direct = true;
  ro.max_len = 4096;
  ro.kept = -1;
  FERRY_TRY(reader_->start(reader_root, image_.tree, {kReaderFile}, ro));
  FERRY_TRY(reader_->wait_progress(1000, 10s));
  FERRY_ASSIGN(rss_start_kib_, live_rss_kib(daemon_.pid()));
  return {};
}

// A pause between rounds, and proof that the reader is being served.
Status Bench::settle() {
  FERRY_TRY(sleep_ns(100 * kNsPerMs));
  return reader_->wait_progress(200, 10s);
}

Status Bench::crash_round() {
  FERRY_TRY(settle());
  CrashRound r;
  int next = gen_ + 1;
  int64_t t_kill = now_ns();
  if (::kill(daemon_.pid(), SIGKILL) != 0) return errno_error("kill -9 " + std::to_string(daemon_.pid()));
  if (!daemon_.wait_exit(10s, interrupted)) return Error{ETIMEDOUT, "the killed daemon was not reaped"};
  int64_t t_reaped = now_ns();
  FERRY_ASSIGN(daemon_, spawn_daemon(next, true));
  gen_ = next;
  FERRY_TRY(wait_listening(next, daemon_, 30s));
  int64_t t_init = now_ns();
  Switch s;
  FERRY_TRY(takeover_and_start(next, s));
  FERRY_ASSIGN(GapWindow w,
               reader_->window(t_kill - 50 * kNsPerMs, s.started + 200 * kNsPerMs, s.takeover_call, 10s));
  FERRY_TRY(save(next));  // after the window: a fresh state for the next crash
  r.blackout = to_ms(w.max_gap_ns);
  r.kill_to_first_read = to_ms(w.first_after - t_kill);
  r.kill_to_reaped = to_ms(t_reaped - t_kill);
  r.successor_to_init = to_ms(t_init - t_reaped);
  r.takeover = to_ms(s.taken_over - s.takeover_call);
  r.start = to_ms(s.started - s.taken_over);
  r.takeover_start = to_ms(s.started - s.takeover_call);
  FERRY_ASSIGN(r.inside, logged_takeover_start(next));
  r.kill_to_started = to_ms(s.started - t_kill);
  r.started_to_first_read = to_ms(w.first_after - s.started);
  r.window_ops = w.ops;
  r.gap_from = to_ms(w.gap_from - t_kill);
  r.gap_to = to_ms(w.gap_to - t_kill);
  crash_.push_back(r);
  std::fprintf(stderr,
               "  crash   %2zu: blackout %7.3f ms, kill->first read %7.3f, successor->INIT %7.3f, "
               "takeover+start %6.3f ms\n",
               crash_.size(), r.blackout, r.kill_to_first_read, r.successor_to_init, r.takeover_start);
  return {};
}

// A crash with a prepared hot standby: the successor (`ferryd --upgrade`) was started long before,
// took the saved state over and stands by; on the kill the harness only reaps the dead daemon.
// "takeover" is the standby's takeover call, made before the crash; it starts on its own.
Status Bench::standby_round() {
  FERRY_TRY(settle());
  int next = gen_ + 1;
  FERRY_ASSIGN(Process standby, spawn_background_successor(next));  // killed on the way out if anything fails
  FERRY_TRY(wait_listening(next, standby, 30s));
  Switch s;
  FERRY_TRY(takeover(next, s));
  FERRY_TRY(with_log(fast_ok(sock(next), "PUT", "/api/v1/daemon/start?when=predecessor-exits"), next));
  FERRY_TRY(settle());  // its start-up is over long before the crash, as with a real standby
  CrashRound r;
  int64_t t_kill = now_ns();
  if (::kill(daemon_.pid(), SIGKILL) != 0) return errno_error("kill -9 " + std::to_string(daemon_.pid()));
  if (!daemon_.wait_exit(10s, interrupted)) return Error{ETIMEDOUT, "the killed daemon was not reaped"};
  int64_t t_reaped = now_ns();
  daemon_ = std::move(standby);
  gen_ = next;
  FERRY_TRY(wait_state(next, daemon_, "RUNNING", 10s));
  int64_t t_running = now_ns();
  // Reaped means gone: every read completed after that is the standby's.
  FERRY_ASSIGN(GapWindow w,
               reader_->window(t_kill - 50 * kNsPerMs, t_running + 200 * kNsPerMs, t_reaped, 10s));
  FERRY_TRY(save(next));
  r.blackout = to_ms(w.max_gap_ns);
  r.kill_to_first_read = to_ms(w.first_after - t_kill);
  r.kill_to_reaped = to_ms(t_reaped - t_kill);
  r.takeover = to_ms(s.taken_over - s.takeover_call);
  r.takeover_start = r.takeover;
  r.kill_to_started = to_ms(t_running - t_kill);
  r.started_to_first_read = to_ms(w.first_after - t_running);
  r.window_ops = w.ops;
  r.gap_from = to_ms(w.gap_from - t_kill);
  r.gap_to = to_ms(w.gap_to - t_kill);
  standby_.push_back(r);
  std::fprintf(stderr,
               "  standby %2zu: blackout %7.3f ms, kill->first read %7.3f, kill->reaped %6.3f, "
               "takeover (before the crash) %6.3f ms\n",
               standby_.size(), r.blackout, r.kill_to_first_read, r.kill_to_reaped, r.takeover);
  return {};
}

Status Bench::upgrade_round() {
  FERRY_TRY(settle());
  UpgradeRound r;
  int old_gen = gen_;
  int next = gen_ + 1;
  // As ferry-snapshotter upgrades: the successor first (its start-up disturbs the readers on
  // this machine, and is done before the hand-over begins), then a fresh save, the takeover.
  int64_t t_begin = now_ns();
  FERRY_ASSIGN(Process successor,
               spawn_background_successor(next));  // killed on the way out if anything fails
  int64_t t_spawned = now_ns();
  FERRY_TRY(wait_listening(next, successor, 30s));
  int64_t t_init = now_ns();
  int64_t t_save = now_ns();
  FERRY_TRY(save(old_gen));
  int64_t t_saved = now_ns();
  Switch s;
  FERRY_TRY(takeover_and_start(next, s));
  int64_t t_exit_call = now_ns();
  FERRY_TRY(with_log(fast_ok(sock(old_gen), "PUT", "/api/v1/daemon/exit"), old_gen));
  auto st = daemon_.wait_exit(10s, interrupted);
  FERRY_TRY(check_interrupt());
  if (!st) return with_log(Error{ETIMEDOUT, "the old daemon did not exit after PUT exit"}, old_gen);
  if (!WIFEXITED(*st) || WEXITSTATUS(*st) != 0) {
    return with_log(Error{EIO, "the old daemon ended with " + describe_status(*st)}, old_gen);
  }
  int64_t t_exit = daemon_.exit_ns();
  daemon_ = std::move(successor);
  gen_ = next;
  FERRY_ASSIGN(GapWindow w, reader_->window(t_begin, t_exit + 100 * kNsPerMs, t_begin, 10s));
  r.blackout = to_ms(w.max_gap_ns);
  // The switch itself: from the takeover call to the old process's exit (both serve in between).
  FERRY_ASSIGN(GapWindow hw, reader_->window(s.takeover_call, t_exit, s.takeover_call, 10s));
  r.handover = to_ms(hw.max_gap_ns);
  r.handover_from = to_ms(hw.gap_from - t_begin);
  r.handover_window = to_ms(t_exit - s.takeover_call);
  r.save = to_ms(t_saved - t_save);
  r.successor_to_init = to_ms(t_init - t_spawned);
  r.takeover = to_ms(s.taken_over - s.takeover_call);
  r.start = to_ms(s.started - s.taken_over);
  r.takeover_start = to_ms(s.started - s.takeover_call);
  FERRY_ASSIGN(r.inside, logged_takeover_start(next));
  r.exit = to_ms(t_exit - t_exit_call);
  r.window = to_ms(t_exit + 100 * kNsPerMs - t_begin);
  r.window_ops = w.ops;
  r.gap_from = to_ms(w.gap_from - t_begin);
  r.gap_to = to_ms(w.gap_to - t_begin);
  r.events = {{"successor_spawned", to_ms(t_spawned - t_begin)},
              {"successor_init", to_ms(t_init - t_begin)},
              {"save_call", to_ms(t_save - t_begin)},
              {"saved", to_ms(t_saved - t_begin)},
              {"takeover_call", to_ms(s.takeover_call - t_begin)},
              {"taken_over", to_ms(s.taken_over - t_begin)},
              {"started", to_ms(s.started - t_begin)},
              {"exit_call", to_ms(t_exit_call - t_begin)},
              {"old_exited", to_ms(t_exit - t_begin)}};
  upgrade_.push_back(r);
  std::fprintf(
      stderr,
      "  upgrade %2zu: hand-over %7.3f ms (at %.1f), longest gap %7.3f ms (at %.1f ms; INIT at %.1f, "
      "takeover at %.1f, started at %.1f, exit at %.1f..%.1f), save %6.3f, takeover+start %6.3f ms\n",
      upgrade_.size(), r.handover, r.handover_from, r.blackout, r.gap_from, to_ms(t_init - t_begin),
      to_ms(s.takeover_call - t_begin), to_ms(s.started - t_begin), to_ms(t_exit_call - t_begin),
      to_ms(t_exit - t_begin), r.save, r.takeover_start);
  return {};
}

Status Bench::idle_round() {
  FERRY_TRY(settle());
  return idle_.round(*reader_, upgrade_.empty() ? std::nan("") : upgrade_.back().handover_window);
}

Status Bench::run() {
  const std::string& m = opt_.mode;
  return run_rounds(opt_.rounds,
                    {{m == "crash" || m == "both" || m == "all", [this] { return crash_round(); }},
                     {m == "standby" || m == "all", [this] { return standby_round(); }},
                     {m == "upgrade" || m == "both" || m == "all", [this] { return upgrade_round(); }}},
                    [this] { return idle_round(); });
}

Status Bench::finish() {
  state_bytes_ = supervisor_->state_size();
  if (!reader_->stop(10s)) return Error{ETIMEDOUT, "the reader did not stop"};
  reader_ops_ = reader_->board().ops();
  reader_errors_ = reader_->board().errors.load();
  reader_mismatches_ = reader_->board().mismatches.load();
  reader_failures_ = reader_->board().failure_list();
  FERRY_ASSIGN(rss_end_kib_, live_rss_kib(daemon_.pid()));
  load_end_ = loadavg();
  // SIGTERM: the daemon stops serving, unmounts and exits 0.
  ::kill(daemon_.pid(), SIGTERM);
  auto st = daemon_.wait_exit(15s);
  if (!st) {
    daemon_.kill_and_reap();
    return with_log(Error{ETIMEDOUT, "ferryd did not exit after SIGTERM"}, gen_);
  }
  final_exit_status_ = *st;
  unmount_quietly(mnt_);
  return {};
}

// Runs on every exit path: stops the reader, kills every daemon by pid, drops the supervisor
// (its /dev/fuse fd is the last one once the daemons are dead: the kernel then aborts the
// connection, so a read blocked on a dead daemon fails at once), unmounts, removes the temp dir.
void Bench::teardown() {
  if (reader_) reader_->request_stop();
  daemon_.kill_and_reap();
  supervisor_.reset();
  if (reader_ && !reader_->stop(3s)) {
    // Still blocked in the mount: abort the FUSE connection (umount -f does that for FUSE).
    std::fprintf(stderr, "takeover_bench: the reader is stuck; aborting the FUSE connection\n");
    if (!mnt_.empty()) ::umount2(mnt_.c_str(), MNT_FORCE);
    reader_->kill();
  }
  reader_.reset();
  if (!mnt_.empty()) unmount_quietly(mnt_);
  dir_.reset();
}

json Bench::report() const {
  json j;
  j["config"] = {{"images", opt_.images},
                 {"daemon", shared() ? "shared" : "dedicated"},
                 {"rounds", opt_.rounds},
                 {"mode", opt_.mode},
                 {"ferryd", opt_.ferryd},
                 {"ferryd_version", ferryd_version_},
                 {"image_files", image_.files.size()},
                 {"image_bytes", image_.bytes},
                 {"reader_file_bytes", kReaderFileBytes}};
  j["loadavg_start"] = load_start_;
  j["loadavg_end"] = load_end_;
  auto crash_json = [&](const std::vector<CrashRound>& list) {
    json c;
    c["blackout_ms"] = summarize(column(list, &CrashRound::blackout));
    c["kill_to_first_read_ms"] = summarize(column(list, &CrashRound::kill_to_first_read));
    c["kill_to_reaped_ms"] = summarize(column(list, &CrashRound::kill_to_reaped));
    c["successor_to_init_ms"] = summarize(column(list, &CrashRound::successor_to_init));
    c["takeover_ms"] = summarize(column(list, &CrashRound::takeover));
    c["start_ms"] = summarize(column(list, &CrashRound::start));
    c["takeover_start_ms"] = summarize(column(list, &CrashRound::takeover_start));
    c["inside_ms"] = summarize(column(list, &CrashRound::inside));
    c["kill_to_started_ms"] = summarize(column(list, &CrashRound::kill_to_started));
    c["started_to_first_read_ms"] = summarize(column(list, &CrashRound::started_to_first_read));
    json rounds = json::array();
    for (const auto& r : list) {
      rounds.push_back({{"blackout_ms", r.blackout},
                        {"kill_to_first_read_ms", r.kill_to_first_read},
                        {"kill_to_reaped_ms", r.kill_to_reaped},
                        {"successor_to_init_ms", r.successor_to_init},
                        {"takeover_ms", r.takeover},
                        {"start_ms", r.start},
                        {"takeover_start_ms", r.takeover_start},
                        {"kill_to_started_ms", r.kill_to_started},
                        {"started_to_first_read_ms", r.started_to_first_read},
                        {"window_ops", r.window_ops},
                        {"gap_ms_after_kill", {r.gap_from, r.gap_to}}});
    }
    c["rounds"] = rounds;
    return c;
  };
  if (!crash_.empty()) j["crash"] = crash_json(crash_);
  if (!standby_.empty()) j["standby"] = crash_json(standby_);
  if (!upgrade_.empty()) {
    json u;
    u["blackout_ms"] = summarize(column(upgrade_, &UpgradeRound::blackout));
    u["handover_ms"] = summarize(column(upgrade_, &UpgradeRound::handover));
    u["save_ms"] = summarize(column(upgrade_, &UpgradeRound::save));
    u["successor_to_init_ms"] = summarize(column(upgrade_, &UpgradeRound::successor_to_init));
    u["takeover_ms"] = summarize(column(upgrade_, &UpgradeRound::takeover));
    u["start_ms"] = summarize(column(upgrade_, &UpgradeRound::start));
    u["takeover_start_ms"] = summarize(column(upgrade_, &UpgradeRound::takeover_start));
    u["inside_ms"] = summarize(column(upgrade_, &UpgradeRound::inside));
    u["exit_ms"] = summarize(column(upgrade_, &UpgradeRound::exit));
    u["window_ms"] = summarize(column(upgrade_, &UpgradeRound::window));
    json rounds = json::array();
    for (const auto& r : upgrade_) {
      rounds.push_back({{"blackout_ms", r.blackout},
                        {"handover_ms", r.handover},
                        {"handover_gap_ms_after_spawn", r.handover_from},
                        {"handover_window_ms", r.handover_window},
                        {"save_ms", r.save},
                        {"successor_to_init_ms", r.successor_to_init},
                        {"takeover_ms", r.takeover},
                        {"start_ms", r.start},
                        {"takeover_start_ms", r.takeover_start},
                        {"exit_ms", r.exit},
                        {"window_ms", r.window},
                        {"window_ops", r.window_ops},
                        {"gap_ms_after_spawn", {r.gap_from, r.gap_to}},
                        {"events_ms_after_spawn", r.events}});
    }
    u["rounds"] = rounds;
    j["upgrade"] = u;
  }
  j["idle"] = idle_.report();
  j["reader"] = {{"ops", reader_ops_},
                 {"errors", reader_errors_},
                 {"mismatches", reader_mismatches_},
                 {"failures", reader_failures_}};
  j["ferryd"] = {{"rss_kib_start", rss_start_kib_},
                 {"rss_kib_end", rss_end_kib_},
                 {"state_bytes", state_bytes_},
                 {"generations", gen_ + 1},
                 {"final_exit", final_exit_status_ >= 0 ? describe_status(final_exit_status_) : "unknown"}};
  return j;
}

std::string Bench::title() const {
  return "takeover_bench: " + std::to_string(opt_.images) + " image(s), " +
         (shared() ? "shared" : "dedicated") + " daemon, " + std::to_string(opt_.rounds) + " rounds, mode " +
         opt_.mode + "; " + ferryd_version_;
}

// The summary table: printed by run_benchmark and pasted into docs/benchmarks.md by
// bench/takeover_bench_report.py (rows not measured in this mode are left out).
StatsTable Bench::table(const json& j) const {
  return StatsTable::of(
      j,
      {
          {"crash", "blackout_ms", "**crash: blackout**"},
          {"crash", "kill_to_first_read_ms", "crash: kill -> first read served by the successor"},
          {"crash", "successor_to_init_ms", "crash: reaped -> successor in INIT"},
          {"crash", "takeover_ms", "crash: takeover call"},
          {"crash", "start_ms", "crash: start call"},
          {"crash", "inside_ms", "crash: takeover + start inside ferryd (its log)"},
          {"crash", "takeover_start_ms", "crash: takeover + start around the API calls"},
          {"crash", "started_to_first_read_ms", "crash: start's 204 -> first read"},
          {"standby", "blackout_ms", "**crash with a hot standby: blackout**"},
          {"standby", "kill_to_first_read_ms", "hot standby: kill -> first read served by the successor"},
          {"standby", "kill_to_reaped_ms", "hot standby: kill -> reaped"},
          {"standby", "kill_to_started_ms", "hot standby: kill -> seen RUNNING"},
          {"standby", "takeover_ms", "hot standby: its takeover, before the crash"},
          {"upgrade", "handover_ms", "**upgrade: hand-over blackout (takeover call .. old process exited)**"},
          {"upgrade", "blackout_ms",
           "upgrade: longest gap over the whole upgrade (successor spawned .. old process exited + 100 ms)"},
          {"upgrade", "save_ms", "upgrade: save"},
          {"upgrade", "inside_ms", "upgrade: takeover + start inside ferryd (its log)"},
          {"upgrade", "takeover_start_ms", "upgrade: takeover + start around the API calls"},
          {"upgrade", "exit_ms", "upgrade: PUT exit -> old process exited"},
          {"idle", "max_gap_ms", "idle: longest gap in 300 ms, no switch"},
          {"idle", "handover_length_max_gap_ms",
           "idle: longest gap in a window as long as the round's hand-over (the control)"},
      });
}

std::string Bench::footer(const json& /*report*/) const {
  char buf[512];
  std::string out;
  std::snprintf(buf, sizeof buf, "reader: %llu reads, %llu errors, %llu wrong bytes\n",
                static_cast<unsigned long long>(reader_ops_), static_cast<unsigned long long>(reader_errors_),
                static_cast<unsigned long long>(reader_mismatches_));
  out += buf;
  for (const auto& f : reader_failures_) out += "  " + f + "\n";
  std::snprintf(
      buf, sizeof buf,
      "ferryd: VmRSS %.1f MiB at the start, %.1f MiB at the end; saved state %zu bytes; %d generations\n",
      static_cast<double>(rss_start_kib_) / 1024, static_cast<double>(rss_end_kib_) / 1024, state_bytes_,
      gen_ + 1);
  out += buf;
  out += "load average: " + load_start_ + " at the start, " + load_end_ + " at the end\n";
  return out;
}

std::string default_ferryd() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("ferryd") : (self.parent_path() / "ferryd").string();
}

int run_main(int argc, char** argv) {
  set_program_name("takeover_bench");
  CLI::App app{
      "takeover_bench: how long readers of a ferryd mount wait while the daemon crashes and a successor\n"
      "takes over, and during a hot upgrade. Needs root and mkfs.erofs."};
  Options opt;
  opt.ferryd = default_ferryd();
  app.add_option("--ferryd", opt.ferryd, "The ferryd binary")->capture_default_str();
  app.add_option("--rounds", opt.rounds, "Rounds per mode")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option(
         "--images", opt.images,
         "1: a dedicated daemon (--bootstrap); K > 1: a shared daemon with K images attached via the API")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  app.add_option("--mode", opt.mode,
                 "crash (cold successor), standby (crash with a hot standby successor), upgrade, "
                 "both (crash + upgrade) or all three")
      ->capture_default_str()
      ->check(CLI::IsMember({"crash", "standby", "upgrade", "both", "all"}));
  app.add_option("--out-json", opt.out_json, "Write the results (summaries and every round) as JSON here");
  app.add_option("--successor-nice", opt.successor_nice,
                 "Nice value an upgrade's successor and a hot standby start at (ferry-snapshotter: 19); "
                 "a crash's cold successor always starts at 0")
      ->capture_default_str()
      ->check(CLI::Range(0, 19));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  // The nice a low-priority successor returns to when it starts serving: ours (see
  // src/daemon/scheduling.h; ferry-snapshotter passes its own the same way).
  errno = 0;
  const int own_nice = ::getpriority(PRIO_PROCESS, 0);
  ::setenv("FERRY_SERVING_NICE", std::to_string(errno == 0 ? own_nice : 0).c_str(), 1);
  if (::access(opt.ferryd.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "takeover_bench: error: ferryd not executable at '%s' (use --ferryd)\n",
                 opt.ferryd.c_str());
    return 1;
  }
  opt.ferryd = fs::absolute(opt.ferryd).lexically_normal().string();
  if (::geteuid() != 0)
    std::fprintf(stderr, "takeover_bench: warning: not root; mounting will probably fail\n");

  return run_benchmark<Bench>(opt, opt.out_json, "the reader saw errors or wrong bytes");
}

}  // namespace
}  // namespace ferry::bench

int main(int argc, char** argv) {
  return ferry::guarded_main("takeover_bench", [&] { return ferry::bench::run_main(argc, argv); });
}
