// daemon/scheduling.h in a child process of its own (nice values are per thread and per
// process; the test runner must keep its own): every thread, including one created before the
// call, ends at the nice asked for.
#include "daemon/scheduling.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

namespace ferry::daemon {
namespace {

// The nice values of every thread of this process, as "n,n,...".
std::string thread_nices() {
  std::string out;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    const auto tid = static_cast<id_t>(std::stoul(task.path().filename().string()));
    out += (out.empty() ? "" : ",") + std::to_string(::getpriority(PRIO_PROCESS, tid));
  }
  return out;
}

// Runs `body` in a forked child with one extra thread parked on a pipe; returns what the child
// wrote back (its threads' nices after `body`), or "" when it failed.
template <typename Body>
std::string in_child(Body body) {
  int result[2];
  if (::pipe(result) != 0) return "";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(result[0]);
    int park[2];
    if (::pipe(park) != 0) ::_exit(2);
    std::thread parked([fd = park[0]] {
      char c = 0;
      (void)!::read(fd, &c, 1);
    });
    body();
    const std::string nices = thread_nices();
    (void)!::write(result[1], nices.data(), nices.size());
    ::close(park[1]);
    parked.join();
    ::_exit(0);
  }
  ::close(result[1]);
  std::string out;
  char buf[256];
  for (ssize_t n; (n = ::read(result[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(result[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? out : "";
}

TEST(Scheduling, ALeavingDaemonYieldsEveryThread) {
  EXPECT_EQ(in_child([] { yield_cpu_for_exit(); }), "19,19");
}

TEST(Scheduling, ServingPriorityIsRestoredForEveryThread) {
  EXPECT_EQ(in_child([] {
              ::setenv("FERRY_SERVING_NICE", "3", 1);
              yield_cpu_for_exit();
              restore_serving_priority();
            }),
            "3,3");
  // Without FERRY_SERVING_NICE nothing changes.
  EXPECT_EQ(in_child([] {
              ::unsetenv("FERRY_SERVING_NICE");
              yield_cpu_for_exit();
              restore_serving_priority();
            }),
            "19,19");
}

}  // namespace
}  // namespace ferry::daemon
