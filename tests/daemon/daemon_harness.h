// What the daemon end-to-end tests share: sample images built at test time, ferryd processes
// driven over their real HTTP API, supervisors, and reader threads that verify every byte
// they read against the source tree while a daemon crashes or is replaced under them.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "http/http_client.h"
#include "support/test_support.h"

namespace ferry::test {

// A generated tree packed into an EROFS image whose data lives in a blob device (or a Ferry
// image and its blob directory).
struct SampleImage {
  std::string tree;    // source directory (the truth readers compare with)
  std::string meta;    // bootstrap (metadata image)
  std::string blob;    // blob device
  std::string config;  // nydusd config JSON text naming the blob
  std::string config_path;
  std::vector<std::string> files;  // relative paths of regular files
};

// Builds `files` regular files (sizes 0 .. ~3 MiB, seeded), a few directories, into dir/name.
SampleImage make_sample_image(const std::string& dir, const std::string& name, int files, uint64_t seed);
// The same kind of tree, made compressible, packed by `tar` and converted by `ferry-image create
// --compressor COMPRESSOR` (1 MiB chunks): meta is the bootstrap, blob the blob directory, the
// config localfs {"dir": blob}.
SampleImage make_ferry_sample_image(const std::string& dir, const std::string& name, int files, uint64_t seed,
                                    const std::string& compressor);

// A ferryd process. The destructor kills it (SIGKILL, by pid) if still running.
class Ferryd {
 public:
  Ferryd() = default;
  // Starts `ferryd fuse ARGS...`; logs go to `log`. `binary` names another daemon of the build
  // and the arguments it takes before `fuse` (a test daemon, e.g. {"ferryd-stalling", PATH}).
  static Ferryd start(const std::vector<std::string>& args, const std::string& log,
                      const std::map<std::string, std::string>& env = {},
                      const std::vector<std::string>& binary = {"ferryd"});
  Child& process() { return child_; }
  [[nodiscard]] pid_t pid() const { return child_.pid(); }

 private:
  Child child_;
};

// One HTTP call to a unix socket; fails the test on transport errors when `must` is set.
http::HttpResponse api(const std::string& sock, const std::string& method, const std::string& path,
                       const std::string& body = {});
// The daemon's "state" field, or "" if it does not answer.
std::string daemon_state(const std::string& sock);
// Polls until the daemon answers with `state` (deadline).
bool wait_state(const std::string& sock, const std::string& state, std::chrono::milliseconds timeout = 10s);

// Reader threads reading random ranges of random files under `mount` and comparing every byte
// with the same range in `source`. Some files are opened once up front and kept open the whole
// time (they must survive a daemon switch); the rest are opened per read.
class Readers {
 public:
  struct Options {
    int threads = 2;
    bool direct = false;  // O_DIRECT: every read reaches the daemon
    size_t max_len = 256 * 1024;
    uint64_t seed = 1;
  };
  Readers(std::string mount, std::string source, std::vector<std::string> files, Options options);
  ~Readers();
  Readers(const Readers&) = delete;
  Readers& operator=(const Readers&) = delete;

  // Stops the threads. A read that does not return within `deadline` is a request the daemons
  // lost (nobody will answer it, and the caller waits uninterruptibly): the test fails and the
  // FUSE connection is aborted (umount -f), so that the loss cannot hang the test process.
  void stop(std::chrono::milliseconds deadline = 30s);
  [[nodiscard]] uint64_t ops() const { return ops_.load(); }
  [[nodiscard]] uint64_t errors() const { return errors_.load(); }
  [[nodiscard]] uint64_t mismatches() const { return mismatches_.load(); }
  // Up to 20 human-readable descriptions of failures.
  [[nodiscard]] std::vector<std::string> failures() const;
  // Waits until `n` more reads completed successfully (deadline).
  bool wait_progress(uint64_t n, std::chrono::milliseconds timeout = 10s) const;
  // Longest gap between two successful completions (any thread) seen since reset_gap().
  [[nodiscard]] std::chrono::microseconds max_gap() const;
  void reset_gap();

 private:
  void run(int index);
  void note_failure(const std::string& what);

  std::string mount_;
  std::string source_;
  std::vector<std::string> files_;
  Options options_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> ops_{0};
  std::atomic<uint64_t> errors_{0};
  std::atomic<uint64_t> mismatches_{0};
  std::atomic<int64_t> last_ok_ns_{0};
  std::atomic<int64_t> max_gap_ns_{0};
  mutable std::mutex mu_;
  std::vector<std::string> failures_;
  std::atomic<int> finished_{0};
  std::vector<std::thread> threads_;
};

}  // namespace ferry::test
