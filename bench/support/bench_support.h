// bench_support: what takeover_bench and manager_bench share, so that both measure, clean up and
// report the same way.
//
//   clock        now_ns / ns_of / to_ms on the steady clock, loadavg() for the report.
//   interruption g_signal, set by SignalWatcher from SIGINT/SIGTERM/SIGHUP; check_interrupt(),
//                sleep_ns() and poll_until() let every wait unwind on it.
//   processes    Process (fork/exec or fork/call child in its own process group, pidfd exit times,
//                killed and reaped on destruction), run_command(), find_in_path(), and /proc
//                helpers for processes that are not our children (process_alive, wait_gone,
//                processes_naming, vm_rss_kib).
//   temp dir     TempDir: a private directory under $TMPDIR that unmounts what is below it (and,
//                on request, kills by pid the processes naming it) before removing itself.
//   images       splitmix64 / random_bytes (reproducible file content), ImageTree (writes a
//                tree), build_erofs_image() (mkfs.erofs with a blob device, 64 KiB chunks) and
//                localfs_blob_config() (the daemon config naming that blob).
//   reader       ReaderShared / ReaderProcess<S>: the process that reads a FUSE mount, forked
//                while single-threaded, with its shared memory and the "go" pipe it waits on.
//   completions  CompletionRing<N>: one reader thread's completion times in shared memory.
//   gaps         GapWindow / measure_gaps(): the longest gap between a reader's completions
//                around an event (the blackout figure of both benchmarks).
//   O_DIRECT     AlignedBlock: one kBlock buffer aligned for O_DIRECT preads.
//   statistics   summarize() (n/min/median/p99/max as JSON) and column() for per-round structs.
//   main         run_benchmark(): the common body of main() once the options are parsed.
//
// Everything here is for single benchmark processes run by hand or by bench/*.sh: not
// thread-safe unless said (g_signal, check_interrupt and the clock helpers are). Messages on
// stderr are prefixed with program_name() (set it first thing in main). Errors are values.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <new>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/proc_files.h"
#include "common/result.h"
#include "common/unique_fd.h"

namespace ferry::bench {

using namespace std::chrono_literals;

constexpr int64_t kNsPerMs = 1'000'000;
constexpr size_t kBlock = 4096;  // the reader's pread size and O_DIRECT alignment

// ---- program name (prefix of stderr messages) -------------------------------------------------

void set_program_name(const char* name);
const char* program_name();

// ---- clock -----------------------------------------------------------------------------------

int64_t now_ns();  // steady clock
int64_t ns_of(std::chrono::nanoseconds d);
double to_ms(int64_t ns);
std::string loadavg();  // "1m 5m 15m" from /proc/loadavg

// ---- interruption ----------------------------------------------------------------------------

// The first SIGINT/SIGTERM/SIGHUP received; every wait checks it and unwinds.
extern std::atomic<int> g_signal;

Status check_interrupt();
// Sleeps, but returns early (with EINTR) when a signal arrived.
Status sleep_ns(int64_t ns);
// Polls `done` every `every` until it holds (true), the deadline passes or a signal arrives.
bool poll_until(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                std::chrono::microseconds every = 1ms);

// Blocks the termination signals in every thread (it must be created before any other thread)
// and turns them into g_signal on a thread of its own, so that cleanup runs on the main thread
// through ordinary destructors.
class SignalWatcher {
 public:
  SignalWatcher();
  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  sigset_t set_{};
  std::atomic<bool> done_{false};
  std::thread thread_;
};

// ---- child processes -------------------------------------------------------------------------

// The executable `name` would run as, searched in $PATH ("" if not found).
std::string find_in_path(const std::string& name);

// A child started with fork/exec in its own process group (a Ctrl-C at the terminal reaches
// this process, which then stops its children itself) and killed if this process dies
// (PR_SET_PDEATHSIG). The destructor kills it (SIGKILL, by pid) and reaps it unless it was
// already reaped. Exit times come from a pidfd, so they are as precise as a poll() wake-up.
class Process {
 public:
  Process() = default;
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process() { kill_and_reap(); }

  // argv[0] must be a path. stdout and stderr are appended to `log`, stdin is /dev/null. A
  // non-zero `nice` is set in the child before exec (the whole process starts at it).
  static Result<Process> spawn(const std::vector<std::string>& argv, const std::string& log, int nice = 0);
  // Forks a child that runs `body` and exits with its result. Only while this process is still
  // single-threaded: the child may then do anything a normal process does.
  static Result<Process> fork_call(const std::function<int()>& body);

  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] int status() const { return status_; }
  [[nodiscard]] int64_t exit_ns() const { return exit_ns_; }
  [[nodiscard]] bool valid() const { return pid_ > 0 && !reaped_; }

  // True once the process has exited (it is then reaped).
  bool exited();
  // Waits up to `timeout` for the exit (cut short by a signal when `interruptible`); the wait
  // status, or nullopt.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout, bool interruptible = true);
  void kill_and_reap();

 private:
  static Process adopt(pid_t pid);
  bool try_reap();
  void mark_reaped(int st);

  pid_t pid_ = -1;
  UniqueFd pidfd_;
  bool reaped_ = true;
  int status_ = 0;
  int64_t exit_ns_ = 0;
};

std::string describe_status(int st);  // "exit status N", "killed by signal N", ...
// The last `lines` lines of a file, each indented by two spaces (for error messages).
std::string tail_of(const std::string& path, size_t lines);
// Runs a command to completion (bounded), its output going to `log`; fails unless it exits 0.
Status run_command(const std::vector<std::string>& argv, const std::string& log,
                   std::chrono::milliseconds timeout);

// ---- processes not ours to reap: /proc ------------------------------------------------------

// The whole file, "" when it cannot be read (read_whole_file: a /proc file of a process that
// exits meanwhile is an error, not an exception).
std::string slurp(const std::string& path);
bool process_alive(pid_t pid);  // /proc/<pid> exists and is not a zombie
pid_t parent_of(pid_t pid);     // 0 when unknown
std::vector<std::string> cmdline_of(pid_t pid);
std::vector<pid_t> all_pids();
// Every live process (not this one) whose command line names a path below `dir`.
std::vector<pid_t> processes_naming(const std::string& dir);
// Waits (deadline) until a process that is not our child has exited: a pidfd, else /proc polling.
bool wait_gone(pid_t pid, std::chrono::milliseconds timeout);
uint64_t vm_rss_kib(pid_t pid);  // VmRSS in KiB, 0 when the process is gone

// ---- mounts and the temp dir -----------------------------------------------------------------

// Unmounts `path` while it is mounted: normally, then lazily as a last resort. Never fails.
void unmount_quietly(const std::string& path);

// A private directory "$TMPDIR/<prefix>XXXXXX" (else /tmp), removed recursively on destruction
// after (with `kill_leftovers`) SIGKILLing by pid every process still naming it and unmounting
// everything below it. Leaves it in place, with a message, if something stays mounted.
class TempDir {
 public:
  static Result<std::unique_ptr<TempDir>> create(const std::string& prefix, bool kill_leftovers = false);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }
  // SIGKILLs (by pid) every process naming the dir, until none is left (a dying manager may
  // have forked an instant before).
  void kill_leftovers() const;

 private:
  TempDir(std::string path, bool kill_leftovers) : path_(std::move(path)), kill_leftovers_(kill_leftovers) {}
  std::string path_;
  bool kill_leftovers_ = false;
};

// ---- sample images ---------------------------------------------------------------------------

uint64_t splitmix64(uint64_t& x);
std::string random_bytes(size_t size, uint64_t seed);

// Writes the files of an image's source tree, counting them.
struct ImageTree {
  std::string root;
  int files = 0;
  uint64_t bytes = 0;
  // Writes `data` to root/rel, creating the directories.
  Status write(const std::string& rel, const std::string& data);
};

// mkfs.erofs of `tree` into the bootstrap `meta` with the file data in the blob device `blob`
// (64 KiB chunks); its output goes to `log`.
Status build_erofs_image(const std::string& tree, const std::string& meta, const std::string& blob,
                         const std::string& log);
// The daemon config that serves `blob` from the local file system.
nlohmann::json localfs_blob_config(const std::string& blob);

// ---- the reader process ----------------------------------------------------------------------

// The part of a reader process's shared memory every reader has. Lives in a MAP_SHARED mapping;
// the atomics are lock-free, so they work across processes.
struct ReaderShared {
  static constexpr uint32_t kMaxFailures = 10;
  std::atomic<int> state{0};  // 0 not open yet, 1 reading, -errno: open failed
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> mismatches{0};
  std::atomic<uint32_t> nfailures{0};
  char failures[kMaxFailures][200]{};
  char mounted[4096]{};
  char source[4096]{};

  // Records what went wrong (the first kMaxFailures are kept); called in the reader process.
  void fail(const std::string& what);
  [[nodiscard]] std::vector<std::string> failure_list() const;
};

// A reader process forked while this process is still single-threaded (a process that forks while
// holding a file of a FUSE mount sends a FLUSH from the child's close, which no daemon answers
// right after a crash: so only the reader ever holds one). It owns the MAP_SHARED memory `S` (a
// ReaderShared), the "go" pipe the child waits on and the child, which is stopped, killed if need
// be and reaped on destruction. `body(shared, go_fd)` is the child's main: it reads one byte from
// go_fd before touching the mount (EOF: never started). Main thread only.
template <typename S>
class ReaderProcess {
 public:
  using Body = int (*)(S&, int);

  static Result<std::unique_ptr<ReaderProcess>> fork(Body body) {
    void* mem = ::mmap(nullptr, sizeof(S), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return errno_error("mmap of the reader's shared memory");
    auto r = std::unique_ptr<ReaderProcess>(new ReaderProcess(new (mem) S()));
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return errno_error("pipe2");
    UniqueFd read_end(fds[0]);
    UniqueFd write_end(fds[1]);
    S* shared = r->shared_;
    FERRY_ASSIGN(r->process_, Process::fork_call([shared, body, &read_end, &write_end] {
                   write_end.reset();  // so that the parent's close reads as EOF
                   return body(*shared, read_end.get());
                 }));
    r->go_ = std::move(write_end);
    return r;
  }
  ~ReaderProcess() {
    stop(2s);
    process_.kill_and_reap();
    shared_->~S();
    ::munmap(shared_, sizeof(S));
  }
  ReaderProcess(const ReaderProcess&) = delete;
  ReaderProcess& operator=(const ReaderProcess&) = delete;

  [[nodiscard]] S& shared() const { return *shared_; }

  // Hands the reader `mounted` and `source`, says go and waits (10 s) until it has opened its
  // files (`what` names them in errors).
  Status start(const std::string& mounted, const std::string& source, const std::string& what) {
    if (mounted.size() >= sizeof(shared_->mounted) || source.size() >= sizeof(shared_->source)) {
      return Error{ENAMETOOLONG, "paths too long for the reader"};
    }
    std::memcpy(shared_->mounted, mounted.c_str(), mounted.size() + 1);
    std::memcpy(shared_->source, source.c_str(), source.size() + 1);
    char one = 1;
    if (::write(go_.get(), &one, 1) != 1) return errno_error("starting the reader");
    int64_t deadline = now_ns() + 10'000 * kNsPerMs;
    while (shared_->state.load() == 0) {
      FERRY_TRY(check_interrupt());
      FERRY_TRY(check_alive());
      if (now_ns() > deadline) return Error{ETIMEDOUT, "the reader did not open " + what};
      std::this_thread::sleep_for(200us);
    }
    if (int st = shared_->state.load(); st < 0)
      return errno_error(-st, "reader: open " + what + " (O_DIRECT)");
    return {};
  }

  // An error once the reader process has died.
  Status check_alive() {
    if (process_.exited())
      return Error{ECHILD, "the reader process died: " + describe_status(process_.status())};
    return {};
  }
  void request_stop() { shared_->stop.store(true); }
  // Asks the reader to stop and waits up to `timeout` for its exit; true once it has exited.
  bool stop(std::chrono::milliseconds timeout) {
    request_stop();
    go_.reset();  // a reader still waiting for "go" sees EOF
    return process_.wait_exit(timeout, false).has_value();
  }
  // Last resort, once the FUSE connection is gone: SIGKILL and reap.
  void kill() { process_.kill_and_reap(); }

 private:
  explicit ReaderProcess(S* shared) : shared_(shared) {}
  S* shared_ = nullptr;
  UniqueFd go_;
  Process process_;
};

// ---- gaps between a reader's completions -----------------------------------------------------

// One writer's completion times (ns, steady clock) in shared memory: the writer (one thread of
// the reader process) appends, the main process reads the recent past long before the ring
// wraps. Lock-free atomics, so it works across processes.
template <uint64_t N>
struct CompletionRing {
  static_assert((N & (N - 1)) == 0, "a power of two");
  std::atomic<uint64_t> count{0};
  std::atomic<int64_t> ts[N]{};

  // Writer only: `done` is the writer's own count (what it last published).
  void push(int64_t t, uint64_t& done) {
    ts[done & (N - 1)].store(t, std::memory_order_relaxed);
    count.store(++done, std::memory_order_release);
  }
  [[nodiscard]] uint64_t size() const { return count.load(std::memory_order_acquire); }
  [[nodiscard]] int64_t at(uint64_t i) const { return ts[i & (N - 1)].load(std::memory_order_relaxed); }
  // Appends to `out` the completions from the newest back to the last one before `from` (the left
  // end of the window's first gap), leaving out the oldest `margin` slots (the writer may be
  // overwriting them).
  void collect_since(int64_t from, uint64_t margin, std::vector<int64_t>& out) const {
    uint64_t n = size();
    uint64_t oldest = n > N - margin ? n - (N - margin) : 0;
    for (uint64_t j = n; j > oldest; --j) {
      int64_t t = at(j - 1);
      out.push_back(t);
      if (t < from) break;
    }
  }
};

// What a reader saw in a window [from, to] of the steady clock (ns).
struct GapWindow {
  int64_t max_gap_ns = 0;  // longest gap between consecutive completions overlapping the window
  int64_t gap_from = 0;    // the completions around it
  int64_t gap_to = 0;
  int64_t first_after = 0;  // first completion after the reference time
  uint64_t ops = 0;         // completions inside the window
};

// Measures [from, to] in `ts`: completion times in ascending order, from the last one before
// `from` (the left end of the first gap) to at least one after `to`.
GapWindow measure_gaps(const std::vector<int64_t>& ts, int64_t from, int64_t to, int64_t ref);

// ---- O_DIRECT --------------------------------------------------------------------------------

// One kBlock buffer aligned to kBlock, as O_DIRECT reads need.
class AlignedBlock {
 public:
  AlignedBlock() : p_(static_cast<char*>(std::aligned_alloc(kBlock, kBlock))) {}
  [[nodiscard]] char* get() const { return p_.get(); }

 private:
  struct FreeDeleter {
    void operator()(char* p) const { std::free(p); }  // NOLINT(cppcoreguidelines-no-malloc): alignment
  };
  std::unique_ptr<char, FreeDeleter> p_;
};

// ---- statistics ------------------------------------------------------------------------------

// min / median / p99 (nearest rank: with fewer than 100 samples it is the maximum) / max.
nlohmann::json summarize(std::vector<double> v);

// One field of every round, as doubles for summarize().
template <typename Rounds, typename Field>
std::vector<double> column(const Rounds& rounds, Field field) {
  std::vector<double> v;
  for (const auto& r : rounds) v.push_back(static_cast<double>(r.*field));
  return v;
}

// ---- main ------------------------------------------------------------------------------------

// The common body of a benchmark's main() once its options are parsed: forks the reader process
// with `fork_reader()` (first: it needs a single-threaded process), starts the SignalWatcher, then
// runs setup / run / finish on a `B(opt, reader)`, prints its table and writes its JSON report to
// `out_json` (when not empty). The bench is torn down before the signal watcher goes. Returns the
// exit status: 0, 1 on failure, 3 when measured but `!bench.clean()` (`unclean` says why on
// stderr), 128+N when interrupted by signal N.
template <typename B, typename Opt, typename ForkReader>
int run_benchmark(const Opt& opt, const std::string& out_json, const ForkReader& fork_reader,
                  const char* unclean) {
  auto reader = fork_reader();
  if (!reader.ok()) {
    std::fprintf(stderr, "%s: error: %s\n", program_name(), reader.error().message.c_str());
    return 1;
  }
  SignalWatcher signals;
  ::signal(SIGPIPE, SIG_IGN);
  int rc = 0;
  {
    B bench(opt, std::move(*reader));
    Status st = bench.setup();
    if (st.ok()) st = bench.run();
    if (st.ok()) st = bench.finish();
    if (!st.ok()) {
      if (g_signal.load() == 0)
        std::fprintf(stderr, "%s: error: %s\n", program_name(), st.error().message.c_str());
      rc = 1;
    } else {
      bench.print_table();
      if (!out_json.empty()) {
        std::ofstream out(out_json);
        out << bench.report().dump(2) << "\n";
        if (!out) {
          std::fprintf(stderr, "%s: error: cannot write '%s'\n", program_name(), out_json.c_str());
          rc = 1;
        }
      }
      if (rc == 0 && !bench.clean()) {
        std::fprintf(stderr, "%s: %s\n", program_name(), unclean);
        rc = 3;
      }
    }
  }
  if (int sig = g_signal.load(); sig != 0) return 128 + sig;
  return rc;
}

}  // namespace ferry::bench
