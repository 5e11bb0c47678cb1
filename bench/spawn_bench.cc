// spawn_bench: what starting a daemon costs the process that starts it, by the size of that
// process. ferry-snapshotter starts a cold failover's successor inside the blackout, so this
// time is part of it. Side by side, alternated, in one run:
//   posix_spawn  manager::DaemonProcess::spawn, as ferry-snapshotter starts ferryd (glibc's
//                posix_spawn: the child shares the parent's memory until it execs);
//   fork+exec    fork(), then execve() in the child (the page tables are copied, then torn down
//                by the exec).
// Each run starts `BINARY --version` and measures until the child has exec'd (spawn returns;
// for fork+exec, the close-on-exec pipe reads EOF), then reaps it untimed.
//
// Usage: spawn_bench --binary build/bin/ferryd [--rss-mib 15] [--runs 200]
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/guarded_main.h"
#include "manager/daemon_process.h"

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// fork + execve of argv, timed until the exec (EOF on a close-on-exec pipe); -1 on failure.
double fork_exec(const std::vector<char*>& argv) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return -1;
  const auto t0 = Clock::now();
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, 1);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  char c = 0;
  while (::read(fds[0], &c, 1) < 0 && errno == EINTR) {
  }
  const double ms = ms_since(t0);
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? ms : -1;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1))];
}

int run(int argc, char** argv) {
  CLI::App app{
      "spawn_bench: the cost of starting a daemon, posix_spawn against fork+exec, by the starter's size"};
  std::string binary;
  unsigned rss_mib = 15;
  unsigned runs = 200;
  app.add_option("--binary", binary, "Absolute path of the program to start with --version (ferryd)")
      ->required();
  app.add_option("--rss-mib", rss_mib, "Memory this process touches first, MiB (ferry-snapshotter: about 15)")
      ->capture_default_str();
  app.add_option("--runs", runs, "Starts of each kind, alternated")
      ->capture_default_str()
      ->check(CLI::Range(2U, 100000U));
  CLI11_PARSE(app, argc, argv);

  const size_t bytes = size_t{rss_mib} << 20;
  auto ballast = std::make_unique<char[]>(bytes);
  std::memset(ballast.get(), 1, bytes);  // resident, as a manager's heap is

  std::string version_flag = "--version";
  std::vector<char*> args = {binary.data(), version_flag.data(), nullptr};
  const std::string log = "/dev/null";
  std::vector<double> spawned;
  std::vector<double> forked;
  for (unsigned i = 0; i < runs; ++i) {
    const auto t0 = Clock::now();
    auto p = ferry::manager::DaemonProcess::spawn({binary, "--version"}, log);
    const double ms = ms_since(t0);
    if (!p.ok()) {
      std::fprintf(stderr, "spawn_bench: %s\n", p.error().message.c_str());
      return 1;
    }
    (void)p->wait_exit(std::chrono::seconds(10));
    spawned.push_back(ms);
    const double f = fork_exec(args);
    if (f < 0) {
      std::fprintf(stderr, "spawn_bench: fork+exec of %s failed\n", binary.c_str());
      return 1;
    }
    forked.push_back(f);
  }
  std::printf("| starter RSS | posix_spawn median / p90 | fork+exec median / p90 | ratio (medians) |\n");
  std::printf("|---:|---:|---:|---:|\n");
  std::printf("| %u MiB | %.3f / %.3f ms | %.3f / %.3f ms | %.1fx |\n", rss_mib, percentile(spawned, 0.5),
              percentile(spawned, 0.9), percentile(forked, 0.5), percentile(forked, 0.9),
              percentile(forked, 0.5) / percentile(spawned, 0.5));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return ferry::guarded_main("spawn_bench", [&] { return run(argc, argv); });
}
