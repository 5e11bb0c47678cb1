#include "kit/readers.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <sstream>
#include <stdexcept>

#include "kit/hooks.h"
#include "kit/sample_image.h"
#include "kit/wait.h"

namespace ferry::testkit {

constexpr size_t kBlock = 4096;

GapWindow measure_gaps(const std::vector<int64_t>& ts, int64_t from, int64_t to, int64_t ref) {
  GapWindow w;
  for (size_t i = 0; i < ts.size(); ++i) {
    if (ts[i] >= from && ts[i] <= to) ++w.ops;
    if (w.first_after == 0 && ts[i] > ref) w.first_after = ts[i];
    if (i > 0 && ts[i] >= from && ts[i - 1] <= to && ts[i] - ts[i - 1] > w.max_gap_ns) {
      w.max_gap_ns = ts[i] - ts[i - 1];
      w.gap_from = ts[i - 1];
      w.gap_to = ts[i];
    }
  }
  return w;
}

// ---- ReadBoard -------------------------------------------------------------------------------

void ReadBoard::fail(const std::string& what) {
  uint32_t i = nfailures.fetch_add(1);
  if (i < kMaxFailures) std::snprintf(failures[i], sizeof failures[i], "%s", what.c_str());
}

std::vector<std::string> ReadBoard::failure_list() const {
  std::vector<std::string> out;
  uint32_t n = std::min<uint32_t>(nfailures.load(), kMaxFailures);
  for (uint32_t i = 0; i < n; ++i) out.emplace_back(failures[i]);
  return out;
}

uint64_t ReadBoard::ops() const {
  uint64_t n = 0;
  for (int t = 0; t < threads.load(); ++t) n += rings[t].size();
  return n;
}

int64_t ReadBoard::latest() const {
  int64_t t = 0;
  for (int i = 0; i < threads.load(); ++i) {
    uint64_t n = rings[i].size();
    if (n > 0) t = std::max(t, rings[i].at(n - 1));
  }
  return t;
}

bool ReadBoard::all_after(int64_t t) const {
  const int n = threads.load();
  for (int i = 0; i < n; ++i) {
    uint64_t c = rings[i].size();
    if (c == 0 || rings[i].at(c - 1) <= t) return false;
  }
  return n > 0;
}

GapWindow ReadBoard::measure(int64_t from, int64_t to, int64_t ref) const {
  std::vector<int64_t> ts;
  for (int i = 0; i < threads.load(); ++i) rings[i].collect_since(from, 1U << 14, ts);
  std::sort(ts.begin(), ts.end());
  return measure_gaps(ts, from, to, ref);
}

void BoardDeleter::operator()(ReadBoard* b) const {
  b->~ReadBoard();
  ::munmap(b, sizeof(ReadBoard));
}

Result<BoardPtr> make_board(bool shared) {
  void* mem = ::mmap(nullptr, sizeof(ReadBoard), PROT_READ | PROT_WRITE,
                     (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return errno_error("mmap of a reader board");
  // Default-initialised, not value-initialised: the rings stay untouched (zero) pages.
  return BoardPtr(new (mem) ReadBoard);
}

// ---- Readers ---------------------------------------------------------------------------------

// A source file mapped once for all threads: comparing costs no syscall.
struct Readers::Source {
  const char* data = nullptr;
  size_t size = 0;
  explicit Source(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st {};
    if (!fd || ::fstat(fd.get(), &st) != 0 || st.st_size <= 0) return;
    void* p = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (p == MAP_FAILED) return;
    data = static_cast<const char*>(p);
    size = static_cast<size_t>(st.st_size);
  }
  ~Source() {
    if (data != nullptr) ::munmap(const_cast<char*>(data), size);  // NOLINT: munmap's signature
  }
  Source(const Source&) = delete;
  Source& operator=(const Source&) = delete;
};

Readers::Readers(std::string mount, std::string source, std::vector<std::string> files, ReadOptions options,
                 ReadBoard* board)
    : mount_(std::move(mount)), files_(std::move(files)), options_(options), board_(board) {
  if (board_ == nullptr) {
    auto made = make_board(false);
    if (!made.ok()) throw std::runtime_error(made.error().message);
    own_ = std::move(*made);
    board_ = own_.get();
  }
  options_.threads = std::clamp(options_.threads, 1, ReadBoard::kMaxThreads);
  options_.max_len = std::max(kBlock, options_.max_len / kBlock * kBlock);
  for (const auto& f : files_) sources_.push_back(std::make_shared<const Source>(source + "/" + f));
  board_->threads.store(options_.threads);
  gap_since_.store(now_ns());
  for (int i = 0; i < options_.threads; ++i) {
    threads_.emplace_back([this, i] {
      run(i);
      board_->finished.fetch_add(1);
    });
  }
}

Readers::~Readers() {
  stop();
}

bool Readers::stop(std::chrono::milliseconds deadline) {
  if (threads_.empty()) return true;
  board_->stop.store(true);
  const int count = static_cast<int>(threads_.size());
  bool ok = wait_until([&] { return board_->finished.load() == count; }, deadline);
  if (!ok) {
    report_failure(std::to_string(count - board_->finished.load()) + " reader(s) of " + mount_ +
                   " still blocked after " + std::to_string(deadline.count()) +
                   " ms: a request was lost; aborting the FUSE connection");
    ::umount2(mount_.c_str(), MNT_FORCE);
  }
  for (auto& t : threads_) t.join();
  threads_.clear();
  return ok;
}

bool Readers::wait_progress(uint64_t n, std::chrono::milliseconds timeout) const {
  const uint64_t target = ops() + n;
  return wait_until([&] { return ops() >= target; }, timeout);
}

std::chrono::microseconds Readers::max_gap() const {
  // The reset counts as a completion; the time since the last completion does not (as a gap
  // between two completions, it is not over yet).
  const int64_t from = gap_since_.load();
  std::vector<int64_t> ts{from};
  for (int i = 0; i < board_->threads.load(); ++i) board_->rings[i].collect_since(from, 1U << 14, ts);
  std::sort(ts.begin(), ts.end());
  ts.erase(ts.begin(), std::find(ts.begin(), ts.end(), from));
  return std::chrono::microseconds(measure_gaps(ts, from, ts.back(), from).max_gap_ns / 1000);
}

void Readers::reset_gap() {
  gap_since_.store(now_ns());
}

std::string Readers::describe(const std::string& label) const {
  std::ostringstream os;
  os << label << ": ops=" << ops() << " errors=" << errors() << " mismatches=" << mismatches()
     << " max_gap=" << max_gap().count() << "us";
  auto f = failures();
  if (!f.empty()) {
    os << " failures=[";
    for (size_t i = 0; i < f.size(); ++i) os << (i ? ", " : "") << '"' << f[i] << '"';
    os << "]";
  }
  return os.str();
}

namespace {
struct FreeDeleter {
  void operator()(char* p) const { std::free(p); }  // NOLINT(cppcoreguidelines-no-malloc): alignment
};
}  // namespace

void Readers::run(int index) {
  ReadBoard& b = *board_;
  const size_t n = files_.size();
  if (n == 0) return;
  uint64_t rng = options_.seed * 7919 + static_cast<uint64_t>(index);
  const int flags = O_RDONLY | O_CLOEXEC | (options_.direct ? O_DIRECT : 0);
  auto open_file = [&](size_t f) { return UniqueFd(::open((mount_ + "/" + files_[f]).c_str(), flags)); };
  // Files opened before anything happens and kept open throughout.
  const bool all_kept = options_.kept < 0;
  std::vector<std::pair<size_t, UniqueFd>> kept;
  for (size_t k = 0; all_kept ? k < n : k < static_cast<size_t>(options_.kept); ++k) {
    size_t f = all_kept ? k : splitmix64(rng) % n;
    UniqueFd fd = open_file(f);
    if (fd) {
      kept.emplace_back(f, std::move(fd));
    } else if (all_kept) {
      int expected = 0;
      b.open_error.compare_exchange_strong(expected, errno);
      b.fail("open " + files_[f] + ": " + std::strerror(errno));
      return;
    }
  }
  b.opened.fetch_add(1);
  std::unique_ptr<char, FreeDeleter> buf(static_cast<char*>(std::aligned_alloc(kBlock, options_.max_len)));
  auto& ring = b.rings[index];
  uint64_t done = 0;
  const uint64_t max_blocks = options_.max_len / kBlock;
  while (!b.stop.load(std::memory_order_relaxed)) {
    size_t f = 0;
    int fd = -1;
    UniqueFd owned;
    if (!kept.empty() && (all_kept || splitmix64(rng) % 2 == 0)) {
      auto& k = kept[splitmix64(rng) % kept.size()];
      f = k.first;
      fd = k.second.get();
    } else {
      f = splitmix64(rng) % n;
      owned = open_file(f);
      if (!owned) {
        b.errors.fetch_add(1);
        b.fail("open " + files_[f] + ": " + std::strerror(errno));
        std::this_thread::sleep_for(std::chrono::milliseconds(1));  // a dead mount must not spin
        continue;
      }
      fd = owned.get();
    }
    const Source& src = *sources_[f];
    const uint64_t blocks = (src.size + kBlock - 1) / kBlock;
    const uint64_t off = blocks == 0 ? 0 : (splitmix64(rng) % blocks) * kBlock;
    const size_t len = max_blocks == 1 ? kBlock : kBlock * (1 + splitmix64(rng) % max_blocks);
    const ssize_t got = ::pread(fd, buf.get(), len, static_cast<off_t>(off));
    const int64_t t = now_ns();
    if (got < 0) {
      const int err = errno;
      b.errors.fetch_add(1);
      b.fail(files_[f] + ": pread @" + std::to_string(off) + ": " + std::strerror(err));
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // a dead mount must not spin
      continue;
    }
    const size_t want = off >= src.size ? 0 : std::min<size_t>(len, src.size - off);
    if (static_cast<size_t>(got) != want || (want > 0 && std::memcmp(buf.get(), src.data + off, want) != 0)) {
      b.mismatches.fetch_add(1);
      b.fail(files_[f] + ": wrong bytes @" + std::to_string(off) + " (" + std::to_string(got) +
             " bytes, want " + std::to_string(want) + ")");
      continue;
    }
    ring.push(t, done);
  }
}

// ---- ReaderProcess ---------------------------------------------------------------------------

struct ReaderProcess::Request {
  char mount[4096];
  char source[4096];
  char files[16384];  // newline-separated
  ReadOptions options;
};

Result<std::unique_ptr<ReaderProcess>> ReaderProcess::fork(std::function<bool()> give_up) {
  auto r = std::unique_ptr<ReaderProcess>(new ReaderProcess());
  r->give_up_ = std::move(give_up);
  FERRY_ASSIGN(r->board_, make_board(true));
  void* mem = ::mmap(nullptr, sizeof(Request), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return errno_error("mmap of the reader's request");
  r->request_ = new (mem) Request;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return errno_error("pipe2");
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  ReadBoard* board = r->board_.get();
  Request* req = r->request_;
  FERRY_ASSIGN(r->process_, Process::fork_call(
                                [board, req, &read_end, &write_end] {
                                  write_end.reset();  // so that the parent's close reads as EOF
                                  char byte = 0;
                                  if (::read(read_end.get(), &byte, 1) != 1) return 0;  // never started
                                  std::vector<std::string> files;
                                  std::stringstream list(req->files);
                                  for (std::string f; std::getline(list, f);) {
                                    if (!f.empty()) files.push_back(f);
                                  }
                                  Readers readers(req->mount, req->source, files, req->options, board);
                                  // Until the parent closes the pipe (stop, or its death).
                                  while (true) {
                                    ssize_t got = ::read(read_end.get(), &byte, 1);
                                    if (got == 0 || (got < 0 && errno != EINTR)) break;
                                  }
                                  return readers.stop() ? 0 : 1;
                                },
                                /*own_group=*/true));
  r->go_ = std::move(write_end);
  return r;
}

ReaderProcess::~ReaderProcess() {
  stop(std::chrono::seconds(2));
  process_.kill_and_reap();
  if (request_ != nullptr) ::munmap(request_, sizeof(Request));
}

Status ReaderProcess::wait_for(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                               const std::string& what) {
  const int64_t deadline = now_ns() + std::chrono::nanoseconds(timeout).count();
  while (!done()) {
    if (give_up_ && give_up_()) return Error{EINTR, "interrupted while waiting: " + what};
    FERRY_TRY(check_alive());
    if (now_ns() > deadline) return Error{ETIMEDOUT, what};
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return {};
}

Status ReaderProcess::start(const std::string& mount, const std::string& source,
                            const std::vector<std::string>& files, const ReadOptions& options) {
  std::string list;
  for (const auto& f : files) list += f + "\n";
  if (mount.size() >= sizeof request_->mount || source.size() >= sizeof request_->source ||
      list.size() >= sizeof request_->files) {
    return Error{ENAMETOOLONG, "paths too long for the reader"};
  }
  std::memcpy(request_->mount, mount.c_str(), mount.size() + 1);
  std::memcpy(request_->source, source.c_str(), source.size() + 1);
  std::memcpy(request_->files, list.c_str(), list.size() + 1);
  request_->options = options;
  const int threads = std::clamp(options.threads, 1, ReadBoard::kMaxThreads);
  char one = 1;
  if (::write(go_.get(), &one, 1) != 1) return errno_error("starting the reader");
  FERRY_TRY(wait_for([&] { return board_->opened.load() == threads || board_->open_error.load() != 0; }, 10s,
                     "the reader did not open its files under '" + mount + "'"));
  if (int err = board_->open_error.load(); err != 0)
    return errno_error(err, "reader: open of its files under '" + mount + "'");
  return {};
}

Status ReaderProcess::check_alive() {
  if (process_.exited())
    return Error{ECHILD, "the reader process died: " + describe_status(process_.status())};
  return {};
}

Status ReaderProcess::wait_progress(uint64_t n, std::chrono::milliseconds timeout) {
  const uint64_t target = board_->ops() + n;
  return wait_for(
      [&] { return board_->ops() >= target; }, timeout,
      "the reader made no progress (" + std::to_string(board_->errors.load()) + " errors so far)");
}

Result<int64_t> ReaderProcess::wait_completion_after(int64_t t, std::chrono::milliseconds timeout) {
  int64_t latest = 0;
  FERRY_TRY(wait_for([&] { return (latest = board_->latest()) > t; }, timeout,
                     "no read completed within " + std::to_string(timeout.count()) + " ms (" +
                         std::to_string(board_->errors.load()) + " errors so far)"));
  return latest;
}

Result<GapWindow> ReaderProcess::window(int64_t from, int64_t to, int64_t ref,
                                        std::chrono::milliseconds timeout) {
  FERRY_TRY(wait_for([&] { return board_->all_after(to); }, timeout,
                     "not every reader thread completed a read after the window"));
  return board_->measure(from, to, ref);
}

bool ReaderProcess::stop(std::chrono::milliseconds timeout) {
  request_stop();
  go_.reset();  // the child, waiting for "go" or for the end, sees EOF
  return process_.wait_exit(timeout).has_value();
}

}  // namespace ferry::testkit
