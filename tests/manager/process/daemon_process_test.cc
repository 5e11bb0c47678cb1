// DaemonProcess against real processes: spawn (exec errors, log, fds, session, environment,
// signal state), pidfd death notice, adopt (non-children, reused pids), reaping.
#include "manager/daemon_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "daemon/daemon_harness.h"
#include "manager/process/process_test_util.h"

namespace ferry::test {

std::string stat_field(pid_t pid, int n) {
  std::string text = read_file("/proc/" + std::to_string(pid) + "/stat");
  size_t close = text.rfind(')');
  if (close == std::string::npos) return {};
  if (n == 2) return text.substr(text.find('(') + 1, close - text.find('(') - 1);
  std::istringstream in(text.substr(close + 1));
  std::string f;
  for (int i = 3; i <= n; ++i) {
    if (!(in >> f)) return {};
  }
  return f;
}

std::vector<int> open_fds(pid_t pid) {
  std::vector<int> fds;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    fds.push_back(std::stoi(e.path().filename().string()));
  }
  std::sort(fds.begin(), fds.end());
  return fds;
}

bool process_exists(pid_t pid, uint64_t start_time) {
  auto st = manager::process_start_time(pid);
  return st.ok() && *st == start_time;
}

namespace {

using manager::DaemonProcess;

std::string proc_status_line(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      std::string v = line.substr(key.size() + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    }
  }
  return {};
}

bool pidfd_readable(int fd, int timeout_ms) {
  pollfd pfd{fd, POLLIN, 0};
  return ::poll(&pfd, 1, timeout_ms) == 1 && (pfd.revents & POLLIN) != 0;
}

class DaemonProcessTest : public ::testing::Test {
 protected:
  TempDir dir_;
  std::string log_ = dir_ / "out.log";
};

TEST_F(DaemonProcessTest, SpawnTrueExitsZeroAndIsReaped) {
  Spawned p = spawn_or_fail({"/bin/true"}, log_);
  ASSERT_TRUE(p->valid());
  EXPECT_TRUE(p->is_child());
  EXPECT_GT(p->start_time(), 0U);
  auto how = p->wait_exit(5s);
  ASSERT_TRUE(how.ok()) << how.error().message;
  EXPECT_EQ(*how, "exited with status 0");
  EXPECT_FALSE(p->is_alive());
  EXPECT_FALSE(process_exists(p->pid(), p->start_time())) << "reaped child must not linger as a zombie";
  EXPECT_EQ(p->reap(), "exited with status 0") << "reap() after wait_exit repeats the description";
}

TEST_F(DaemonProcessTest, ExitStatusAndSignalAreDescribed) {
  Spawned p = spawn_or_fail({"/bin/sh", "-c", "exit 3"}, log_);
  auto how = p->wait_exit(5s);
  ASSERT_TRUE(how.ok()) << how.error().message;
  EXPECT_EQ(*how, "exited with status 3");

  Spawned q = spawn_or_fail({"/bin/sleep", "30"}, log_);
  ASSERT_TRUE(q->signal(SIGTERM).ok());
  how = q->wait_exit(5s);
  ASSERT_TRUE(how.ok()) << how.error().message;
  EXPECT_EQ(*how, "killed by signal 15");
}

TEST_F(DaemonProcessTest, MissingBinaryIsAnErrorNotADeadChild) {
  std::string missing = dir_ / "no-such-ferryd";
  auto p = DaemonProcess::spawn({missing, "fuse"}, log_);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code, ENOENT) << p.error().message;
  EXPECT_NE(p.error().message.find(missing), std::string::npos) << p.error().message;
  // The failed child was reaped by spawn itself: no zombie is left for anyone to collect.
  EXPECT_LE(::waitpid(-1, nullptr, WNOHANG), 0);
}

TEST_F(DaemonProcessTest, NonExecutableFileIsEacces) {
  std::string file = dir_ / "not-exec";
  std::ofstream(file) << "#!/bin/sh\nexit 0\n";
  ::chmod(file.c_str(), 0644);
  auto p = DaemonProcess::spawn({file}, log_);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code, EACCES) << p.error().message;
  EXPECT_NE(p.error().message.find(file), std::string::npos) << p.error().message;
}

TEST_F(DaemonProcessTest, RelativeOrEmptyArgvIsRefused) {
  auto p = DaemonProcess::spawn({"sleep", "1"}, log_);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code, EINVAL);
  auto q = DaemonProcess::spawn({}, log_);
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.error().code, EINVAL);
}

TEST_F(DaemonProcessTest, UnopenableLogFileIsAnError) {
  auto p = DaemonProcess::spawn({"/bin/true"}, dir_ / "no-dir/log");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code, ENOENT);
  EXPECT_NE(p.error().message.find("no-dir/log"), std::string::npos) << p.error().message;
}

TEST_F(DaemonProcessTest, LogFileGetsStdoutAndStderrAppended) {
  std::ofstream(log_) << "earlier line\n";
  Spawned p =
      spawn_or_fail({"/bin/sh", "-c", "echo to-stdout; echo to-stderr >&2; read x; echo read=$x"}, log_);
  auto how = p->wait_exit(5s);
  ASSERT_TRUE(how.ok()) << how.error().message;
  std::string log = read_file(log_);
  EXPECT_NE(log.find("earlier line\n"), std::string::npos) << log;
  EXPECT_NE(log.find("to-stdout\n"), std::string::npos) << log;
  EXPECT_NE(log.find("to-stderr\n"), std::string::npos) << log;
  EXPECT_NE(log.find("read=\n"), std::string::npos) << "stdin must be /dev/null: " << log;
}

TEST_F(DaemonProcessTest, OnlyStdioIsInheritedAndItIsTheRightFiles) {
  // Descriptors the manager holds without close-on-exec must not reach the daemon.
  UniqueFd leaky(::open("/dev/null", O_RDONLY));
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  UniqueFd pr(pipe_fds[0]);
  UniqueFd pw(pipe_fds[1]);
  UniqueFd high(::fcntl(leaky.get(), F_DUPFD, 200));
  ASSERT_TRUE(leaky && high);
  Spawned p = spawn_or_fail({"/bin/sleep", "30"}, log_);
  ASSERT_TRUE(p->valid());
  // The child's dynamic loader opens files of its own for a moment while it starts, so look
  // once it sleeps: whatever is open then was inherited or leaked.
  ASSERT_TRUE(wait_until(
      [&] {
        return read_file("/proc/" + std::to_string(p->pid()) + "/wchan").find("nanosleep") !=
               std::string::npos;
      },
      5s))
      << "the child never went to sleep";
  EXPECT_EQ(open_fds(p->pid()), (std::vector<int>{0, 1, 2}));
  std::string fd_dir = "/proc/" + std::to_string(p->pid()) + "/fd/";
  EXPECT_EQ(std::filesystem::read_symlink(fd_dir + "0"), "/dev/null");
  EXPECT_EQ(std::filesystem::read_symlink(fd_dir + "1"), log_);
  EXPECT_EQ(std::filesystem::read_symlink(fd_dir + "2"), log_);
}

TEST_F(DaemonProcessTest, KillAndReapAlsoEndsWhatTheChildStarted) {
  // A wrapper script that started the real daemon in the background: killing the wrapper
  // alone would leave an orphan serving (or holding) the mount.
  const std::string pid_file = dir_ / "grandchild.pid";
  Spawned p = spawn_or_fail({"/bin/sh", "-c", "sleep 30 & echo $! > " + pid_file + "; wait"}, log_);
  ASSERT_TRUE(p->valid());
  pid_t grandchild = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        grandchild = static_cast<pid_t>(std::atoi(read_file(pid_file).c_str()));
        return grandchild > 0;
      },
      5s));
  ASSERT_EQ(stat_field(grandchild, 5), std::to_string(p->pid())) << "same process group";
  ASSERT_TRUE(p->kill_and_reap().ok());
  auto gone = [&] {
    std::string state = stat_field(grandchild, 3);
    return state.empty() || state == "Z" || stat_field(grandchild, 5) != std::to_string(p->pid());
  };
  EXPECT_TRUE(wait_until(gone, 5s)) << "the grandchild " << grandchild << " survived";
}

TEST_F(DaemonProcessTest, ChildRunsInItsOwnSession) {
  Spawned p = spawn_or_fail({"/bin/sleep", "30"}, log_);
  ASSERT_TRUE(p->valid());
  EXPECT_EQ(stat_field(p->pid(), 6), std::to_string(p->pid())) << "session id";
  EXPECT_EQ(stat_field(p->pid(), 5), std::to_string(p->pid())) << "process group id";
}

TEST_F(DaemonProcessTest, EnvironmentIsTheManagersPlusExtras) {
  ::setenv("FERRY_TEST_OVERRIDDEN", "old", 1);
  Spawned p = spawn_or_fail({"/bin/sleep", "30"}, log_,
                            {{"FERRY_TEST_EXTRA", "x y"}, {"FERRY_TEST_OVERRIDDEN", "new"}});
  ::unsetenv("FERRY_TEST_OVERRIDDEN");
  ASSERT_TRUE(p->valid());
  // spawn returns once the child has begun its exec, which sets the environment up after that.
  const std::string environ_file = "/proc/" + std::to_string(p->pid()) + "/environ";
  std::string env;
  ASSERT_TRUE(test::wait_until([&] { return !(env = read_file(environ_file)).empty(); }, 10s));
  std::vector<std::string> entries;
  std::istringstream in(env);
  for (std::string e; std::getline(in, e, '\0');) entries.push_back(e);
  auto has = [&](const std::string& e) {
    return std::find(entries.begin(), entries.end(), e) != entries.end();
  };
  EXPECT_TRUE(has("FERRY_TEST_EXTRA=x y"));
  EXPECT_TRUE(has("FERRY_TEST_OVERRIDDEN=new"));
  EXPECT_FALSE(has("FERRY_TEST_OVERRIDDEN=old"));
  EXPECT_TRUE(std::any_of(entries.begin(), entries.end(), [](const std::string& e) {
    return e.rfind("PATH=", 0) == 0;
  })) << "the manager's own environment is passed on";
}

TEST_F(DaemonProcessTest, IdlePrioritySpawnsAtNice19WithTheServingNice) {
  auto idle = manager::DaemonProcess::spawn({"/bin/sleep", "30"}, log_, {}, /*idle_priority=*/true);
  ASSERT_TRUE(idle.ok()) << idle.error().message;
  Spawned normal = spawn_or_fail({"/bin/sleep", "30"}, log_);
  ASSERT_TRUE(normal->valid());
  // proc(5) field 19: nice.
  errno = 0;
  const int own = ::getpriority(PRIO_PROCESS, 0);
  EXPECT_EQ(stat_field(idle->pid(), 19), "19");
  EXPECT_EQ(stat_field(normal->pid(), 19), std::to_string(own));
  std::string env = read_file("/proc/" + std::to_string(idle->pid()) + "/environ");
  EXPECT_NE(env.find("FERRY_SERVING_NICE=" + std::to_string(own) + std::string(1, '\0')), std::string::npos);
  EXPECT_TRUE(idle->kill_and_reap().ok());
}

TEST_F(DaemonProcessTest, SignalMaskAndIgnoredSignalsAreReset) {
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  struct sigaction old_usr1 {};
  ASSERT_EQ(::sigaction(SIGUSR1, &ign, &old_usr1), 0);
  sigset_t block;
  sigset_t old_mask;
  ::sigemptyset(&block);
  ::sigaddset(&block, SIGUSR2);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &block, &old_mask), 0);
  Spawned p = spawn_or_fail({"/bin/sleep", "30"}, log_);
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  ::sigaction(SIGUSR1, &old_usr1, nullptr);
  ASSERT_TRUE(p->valid());
  EXPECT_EQ(proc_status_line(p->pid(), "SigBlk"), "0000000000000000");
  // No standard signal (1-31) ignored. glibc's posix_spawn leaves its two reserved real-time
  // signals (32, 33) ignored in the child; glibc installs its handlers when it needs them.
  const uint64_t ignored = std::stoull(proc_status_line(p->pid(), "SigIgn"), nullptr, 16);
  EXPECT_EQ(ignored & 0x7fffffffULL, 0U) << proc_status_line(p->pid(), "SigIgn");
}

TEST_F(DaemonProcessTest, PidfdBecomesReadableOnDeathAndKillReapsWithoutZombie) {
  Spawned p = spawn_or_fail({"/bin/sleep", "30"}, log_);
  ASSERT_TRUE(p->valid());
  EXPECT_TRUE(p->is_alive());
  EXPECT_FALSE(pidfd_readable(p->pidfd(), 0));
  ASSERT_TRUE(p->signal(SIGKILL).ok());
  EXPECT_TRUE(pidfd_readable(p->pidfd(), 5000)) << "pidfd must become readable when the process dies";
  EXPECT_FALSE(p->is_alive());
  auto how = p->wait_exit(5s);
  ASSERT_TRUE(how.ok()) << how.error().message;
  EXPECT_EQ(*how, "killed by signal 9");
  EXPECT_FALSE(process_exists(p->pid(), p->start_time()));
  Status again = p->signal(SIGTERM);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ESRCH);
}

TEST_F(DaemonProcessTest, WaitExitTimesOutThenKillAndReapLeavesNoZombie) {
  Spawned p = spawn_or_fail({"/bin/sleep", "30"}, log_);
  ASSERT_TRUE(p->valid());
  auto t0 = std::chrono::steady_clock::now();
  auto how = p->wait_exit(100ms);
  auto waited = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(how.ok());
  EXPECT_EQ(how.error().code, ETIMEDOUT);
  EXPECT_GE(waited, 100ms);
  EXPECT_LT(waited, 2s);
  EXPECT_TRUE(p->is_alive());
  ASSERT_TRUE(p->kill_and_reap().ok());
  EXPECT_FALSE(p->is_alive());
  EXPECT_FALSE(process_exists(p->pid(), p->start_time())) << "no zombie after kill_and_reap";
  EXPECT_TRUE(p->kill_and_reap().ok()) << "a second kill_and_reap is harmless";
}

// A process that is not our child: the grandchild of a shell that has exited.
struct Grandchild {
  pid_t pid = -1;
  uint64_t start_time = 0;
  Grandchild() {
    std::string out;
    if (run_shell("/bin/sh -c 'sleep 30 </dev/null >/dev/null 2>&1 & echo $!'", &out) != 0) return;
    pid = static_cast<pid_t>(std::stol(out));
    auto st = manager::process_start_time(pid);
    if (st.ok()) start_time = *st;
  }
  ~Grandchild() {
    if (pid > 0 && process_exists(pid, start_time)) ::kill(pid, SIGKILL);
  }
  Grandchild(const Grandchild&) = delete;
  Grandchild& operator=(const Grandchild&) = delete;
};

TEST_F(DaemonProcessTest, AdoptsANonChildAndNoticesItsDeath) {
  Grandchild g;
  ASSERT_GT(g.pid, 0);
  ASSERT_GT(g.start_time, 0U);
  auto p = DaemonProcess::adopt(g.pid, g.start_time);
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_FALSE(p->is_child());
  EXPECT_EQ(p->pid(), g.pid);
  EXPECT_EQ(p->start_time(), g.start_time);
  EXPECT_TRUE(p->is_alive());
  auto early = p->wait_exit(50ms);
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.error().code, ETIMEDOUT);
  ASSERT_TRUE(p->signal(SIGTERM).ok());
  auto how = p->wait_exit(5s);
  ASSERT_TRUE(how.ok()) << how.error().message;
  EXPECT_EQ(*how, "exited");
  EXPECT_FALSE(p->is_alive());
  EXPECT_EQ(p->reap(), "exited");
}

TEST_F(DaemonProcessTest, KillAndReapOfAnAdoptedNonChild) {
  Grandchild g;
  ASSERT_GT(g.pid, 0);
  auto p = DaemonProcess::adopt(g.pid, g.start_time);
  ASSERT_TRUE(p.ok()) << p.error().message;
  ASSERT_TRUE(p->kill_and_reap().ok());
  EXPECT_FALSE(p->is_alive());
}

TEST_F(DaemonProcessTest, AdoptWithWrongStartTimeOrGonePidIsEsrch) {
  Spawned s = spawn_or_fail({"/bin/sleep", "30"}, log_);
  ASSERT_TRUE(s->valid());
  auto wrong = DaemonProcess::adopt(s->pid(), s->start_time() + 1);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code, ESRCH);
  EXPECT_NE(wrong.error().message.find("reused"), std::string::npos) << wrong.error().message;

  Spawned t = spawn_or_fail({"/bin/true"}, log_);
  ASSERT_TRUE(t->wait_exit(5s).ok());
  auto gone = DaemonProcess::adopt(t->pid(), t->start_time());
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code, ESRCH) << gone.error().message;

  auto bad = DaemonProcess::adopt(0, 0);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ESRCH);
}

TEST_F(DaemonProcessTest, AdoptingOurOwnChildStillReapsIt) {
  Spawned s = spawn_or_fail({"/bin/sleep", "30"}, log_);
  ASSERT_TRUE(s->valid());
  auto p = DaemonProcess::adopt(s->pid(), s->start_time());
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_TRUE(p->is_child());
  ASSERT_TRUE(p->kill_and_reap().ok());
  EXPECT_FALSE(process_exists(s->pid(), s->start_time()));
  EXPECT_FALSE(s->is_alive());
}

TEST_F(DaemonProcessTest, StartTimeParsingSurvivesParenthesesAndSpacesInTheName) {
  std::string odd = dir_ / "a) (b ) c";
  std::filesystem::copy_file("/bin/sleep", odd);
  ::chmod(odd.c_str(), 0755);
  Spawned p = spawn_or_fail({odd, "30"}, log_);
  ASSERT_TRUE(p->valid());
  EXPECT_EQ(read_file("/proc/" + std::to_string(p->pid()) + "/comm"), "a) (b ) c\n");
  auto st = manager::process_start_time(p->pid());
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(*st, p->start_time());
  EXPECT_EQ(std::to_string(*st), stat_field(p->pid(), 22));
  auto a = DaemonProcess::adopt(p->pid(), *st);
  ASSERT_TRUE(a.ok()) << a.error().message;
  auto none = manager::process_start_time(0x3ffffff);  // above any pid_max
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code, ESRCH);
}

TEST_F(DaemonProcessTest, DestructorLeavesTheProcessRunning) {
  pid_t pid = -1;
  uint64_t start = 0;
  {
    auto p = DaemonProcess::spawn({"/bin/sleep", "30"}, log_);
    ASSERT_TRUE(p.ok()) << p.error().message;
    pid = p->pid();
    start = p->start_time();
  }
  EXPECT_TRUE(process_exists(pid, start)) << "daemons outlive their DaemonProcess";
  auto again = DaemonProcess::adopt(pid, start);
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_TRUE(again->is_child());
  EXPECT_TRUE(again->kill_and_reap().ok());
}

}  // namespace
}  // namespace ferry::test
