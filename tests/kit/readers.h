// Readers: threads that read files of a mount, verify every byte against the source tree and
// record the time of every completion, so that a test or benchmark can say whether anything went
// wrong and how long the longest gap between completions was around an event (a daemon crash, an
// upgrade). One harness for tests (threads in the test process) and benchmarks (the same threads
// in a process of their own, ReaderProcess, so that only that process ever holds files of the
// mount).
//
//   ReadBoard      what the threads publish: counts, failures, and one CompletionRing per thread.
//                  Lock-free atomics only, so it also works in MAP_SHARED memory across processes.
//   Readers        the threads. Each keeps `kept` files open from the start (they must survive a
//                  daemon switch; -1: every file, and no other opens), opens the others per read,
//                  and loops preads (4 KiB .. max_len at 4 KiB-aligned offsets of a pseudo-random
//                  file), comparing with the source (mapped once, so a check costs no syscall).
//   ReaderProcess  Readers in a child forked while the caller is still single-threaded.
//   measure_gaps   the longest gap between completions overlapping a window.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "kit/process.h"

namespace ferry::testkit {

// One writer's completion times (ns, steady clock): the writer appends, anyone reads the recent
// past long before the ring wraps. The slots are plain integers accessed atomically, so a ring in
// fresh anonymous memory needs no initialisation (its pages are touched only when written).
template <uint64_t N>
struct CompletionRing {
  static_assert((N & (N - 1)) == 0, "a power of two");
  std::atomic<uint64_t> count{0};
  mutable int64_t ts[N];  // NOLINT(cppcoreguidelines-pro-type-member-init): read only below count

  // Writer only: `done` is the writer's own count (what it last published).
  void push(int64_t t, uint64_t& done) {
    std::atomic_ref<int64_t>(ts[done & (N - 1)]).store(t, std::memory_order_relaxed);
    count.store(++done, std::memory_order_release);
  }
  [[nodiscard]] uint64_t size() const { return count.load(std::memory_order_acquire); }
  [[nodiscard]] int64_t at(uint64_t i) const {
    return std::atomic_ref<int64_t>(ts[i & (N - 1)]).load(std::memory_order_relaxed);
  }
  // Appends the completions from the newest back to the last one before `from` (the left end of a
  // window's first gap), leaving out the oldest `margin` slots (the writer may be overwriting them).
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
// `from` to at least one after `to`. A gap counts when it overlaps the window.
GapWindow measure_gaps(const std::vector<int64_t>& ts, int64_t from, int64_t to, int64_t ref);

struct ReadOptions {
  int threads = 2;
  bool direct = false;          // O_DIRECT: every read reaches the daemon
  size_t max_len = 256 * 1024;  // 4096: every read one block
  int kept = 3;                 // files kept open from the start; -1: all of them, no other opens
  uint64_t seed = 1;
};

struct ReadBoard {
  static constexpr int kMaxThreads = 8;
  static constexpr uint64_t kRing = uint64_t{1} << 20;
  static constexpr uint32_t kMaxFailures = 20;
  struct alignas(64) Ring : CompletionRing<kRing> {};

  std::atomic<bool> stop{false};
  std::atomic<int> threads{0};
  std::atomic<int> opened{0};      // threads that have opened their kept files
  std::atomic<int> open_error{0};  // errno of a thread that could not open its files (and quit)
  std::atomic<int> finished{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> mismatches{0};
  std::atomic<uint32_t> nfailures{0};
  char failures[kMaxFailures][200];  // NOLINT: the first nfailures are written before counted
  Ring rings[kMaxThreads];

  // Records what went wrong (the first kMaxFailures are kept); any thread.
  void fail(const std::string& what);
  [[nodiscard]] std::vector<std::string> failure_list() const;
  [[nodiscard]] uint64_t ops() const;             // successful completions, all threads
  [[nodiscard]] int64_t latest() const;           // the newest completion of any thread (0: none yet)
  [[nodiscard]] bool all_after(int64_t t) const;  // every thread completed a read after t
  // The window [from, to] over all threads' completions (merged).
  [[nodiscard]] GapWindow measure(int64_t from, int64_t to, int64_t ref) const;
};

// Allocates a zeroed board in anonymous memory, MAP_SHARED when it must be seen by a forked
// child; freed by the deleter.
struct BoardDeleter {
  void operator()(ReadBoard* b) const;
};
using BoardPtr = std::unique_ptr<ReadBoard, BoardDeleter>;
Result<BoardPtr> make_board(bool shared);

// The reader threads (a test holds them directly). They start in the constructor; stop() (or the
// destructor) ends them. Queries are safe from any thread.
class Readers {
 public:
  // Reads `files` (relative paths) under `mount`, compared with the same names under `source`.
  // With `board` the threads publish there (it must outlive them), else on a board of their own.
  Readers(std::string mount, std::string source, std::vector<std::string> files, ReadOptions options,
          ReadBoard* board = nullptr);
  ~Readers();
  Readers(const Readers&) = delete;
  Readers& operator=(const Readers&) = delete;

  // Stops the threads. A read that does not return within `deadline` is a request the daemons
  // lost (nobody will answer it and the caller waits uninterruptibly): it is reported as a test
  // failure (hooks.h) and the FUSE connection is aborted (umount -f), so that the loss cannot hang
  // the process. False in that case.
  bool stop(std::chrono::milliseconds deadline = std::chrono::seconds(30));
  [[nodiscard]] const ReadBoard& board() const { return *board_; }
  [[nodiscard]] uint64_t ops() const { return board_->ops(); }
  [[nodiscard]] uint64_t errors() const { return board_->errors.load(); }
  [[nodiscard]] uint64_t mismatches() const { return board_->mismatches.load(); }
  [[nodiscard]] std::vector<std::string> failures() const { return board_->failure_list(); }
  // Waits until `n` more reads completed (deadline).
  bool wait_progress(uint64_t n, std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
  // Longest gap between two successful completions (any thread) since reset_gap() (or the start),
  // over at most the last ReadBoard::kRing completions of each thread.
  [[nodiscard]] std::chrono::microseconds max_gap() const;
  void reset_gap();
  // "label: ops=N errors=N mismatches=N max_gap=Nus failures=[...]" for a test's output.
  [[nodiscard]] std::string describe(const std::string& label) const;

 private:
  struct Source;
  void run(int index);

  std::string mount_;
  std::vector<std::string> files_;
  ReadOptions options_;
  BoardPtr own_;
  ReadBoard* board_ = nullptr;
  std::vector<std::shared_ptr<const Source>> sources_;
  std::atomic<int64_t> gap_since_{0};
  std::vector<std::thread> threads_;
};

// Readers in a child process, forked by fork() while the caller is still single-threaded (a
// process that forks while holding a file of a FUSE mount sends a FLUSH from the child's close,
// which no daemon answers right after a crash: so only the reader process ever holds one). The
// board is in shared memory; the child waits on a pipe for start(). Every wait gives up when
// `give_up()` turns true (a benchmark's signal) with EINTR. Owner thread only.
class ReaderProcess {
 public:
  static Result<std::unique_ptr<ReaderProcess>> fork(std::function<bool()> give_up = {});
  ~ReaderProcess();
  ReaderProcess(const ReaderProcess&) = delete;
  ReaderProcess& operator=(const ReaderProcess&) = delete;

  // Hands the child what to read, says go and waits (10 s) until every thread has its files open.
  Status start(const std::string& mount, const std::string& source, const std::vector<std::string>& files,
               const ReadOptions& options);
  [[nodiscard]] const ReadBoard& board() const { return *board_; }
  [[nodiscard]] int threads() const { return board_->threads.load(); }
  // An error once the child has died.
  Status check_alive();
  // Waits until `n` more reads completed.
  Status wait_progress(uint64_t n, std::chrono::milliseconds timeout);
  // Waits for a completion after `t` (any thread); its time.
  Result<int64_t> wait_completion_after(int64_t t, std::chrono::milliseconds timeout);
  // Waits until every thread has completed a read after `to` (so every completion before it is
  // published), then measures [from, to].
  Result<GapWindow> window(int64_t from, int64_t to, int64_t ref, std::chrono::milliseconds timeout);
  void request_stop() { board_->stop.store(true); }
  // Asks the child to stop and waits up to `timeout` for its exit; true once it has exited.
  bool stop(std::chrono::milliseconds timeout);
  // Last resort, once the FUSE connection is gone: SIGKILL and reap.
  void kill() { process_.kill_and_reap(); }

 private:
  struct Request;
  ReaderProcess() = default;
  Status wait_for(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                  const std::string& what);

  BoardPtr board_;
  Request* request_ = nullptr;  // shared memory: what start() hands the child
  UniqueFd go_;
  Process process_;
  std::function<bool()> give_up_;
};

}  // namespace ferry::testkit
