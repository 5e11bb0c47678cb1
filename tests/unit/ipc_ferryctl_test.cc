// `ferryctl supervisor` as a real process: a save and a takeover from this test (playing the
// daemon) through build/bin/ferryctl, with a pipe standing in for /dev/fuse.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/unique_fd.h"
#include "ipc/fd_passing.h"
#include "ipc/state_envelope.h"
#include "ipc/supervisor_wire.h"
#include "ipc/unix_socket.h"
#include "support/test_support.h"

namespace ferry::ipc {
namespace {

using namespace std::chrono_literals;
using Bytes = std::vector<std::byte>;

Bytes pattern(size_t n, uint32_t seed) {
  Bytes out(n);
  uint32_t x = seed * 2654435761U + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    out[i] = static_cast<std::byte>(x);
  }
  return out;
}

bool hung_up(int fd) {
  pollfd pfd{fd, POLLIN, 0};
  return ::poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLHUP) != 0;
}

bool same_inode(int a, int b) {
  struct stat sa {};
  struct stat sb {};
  return ::fstat(a, &sa) == 0 && ::fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

class Ferryctl : public ::testing::Test {
 protected:
  void start() {
    child_ = test::Process::start(
        {test::binary_path("ferryctl"), "supervisor", "--socket", socket_, "--state-file", state_file_},
        log_);
    ASSERT_TRUE(test::wait_until([&] { return log_has("listening on " + socket_); }, 10s))
        << test::read_file(log_);
  }
  bool log_has(const std::string& needle) { return test::read_file(log_).find(needle) != std::string::npos; }

  test::TempDir dir_;
  std::string socket_ = dir_ / "daemon.sock";
  std::string state_file_ = dir_ / "daemon.state";
  std::string log_ = dir_ / "ferryctl.log";
  test::Process child_;
};

TEST_F(Ferryctl, HelpExplainsHowSavesAndTakeoversAreToldApart) {
  std::string out;
  ASSERT_EQ(test::run_shell(test::binary_path("ferryctl") + " supervisor --help", &out), 0) << out;
  EXPECT_NE(out.find("--socket"), std::string::npos) << out;
  EXPECT_NE(out.find("--state-file"), std::string::npos) << out;
  EXPECT_NE(out.find("--window"), std::string::npos) << out;
  EXPECT_NE(out.find("SAVE"), std::string::npos) << out;
  EXPECT_NE(out.find("TAKEOVER"), std::string::npos) << out;
  EXPECT_NE(out.find("SIGUSR1"), std::string::npos) << out;
  ASSERT_EQ(test::run_shell(test::binary_path("ferryctl") + " --help", &out), 0) << out;
  EXPECT_NE(out.find("supervisor"), std::string::npos) << out;
  EXPECT_NE(test::run_shell(test::binary_path("ferryctl") + " supervisor", &out), 0) << "--socket is required";
}

TEST_F(Ferryctl, SaveThenTakeoverThroughARealProcess) {
  start();
  std::array<int, 2> p{};
  ASSERT_EQ(::pipe2(p.data(), O_CLOEXEC), 0);
  UniqueFd read_end(p[0]);
  UniqueFd write_end(p[1]);  // stands in for the daemon's /dev/fuse fd

  Bytes state = seal(pattern(1024 * 1024 + 3, 5), 1);
  Status saved = send_state(socket_, write_end.get(), state, 10s);
  ASSERT_TRUE(saved.ok()) << saved.error().message;
  const std::string stored_line = "stored state: " + std::to_string(state.size()) + " bytes + fd";
  ASSERT_TRUE(test::wait_until([&] { return log_has(stored_line); }, 5s)) << test::read_file(log_);
  EXPECT_TRUE(log_has("Ferry state v1")) << test::read_file(log_);
  ASSERT_TRUE(test::wait_until([&] { return log_has("wrote " + std::to_string(state.size())); }, 5s));
  std::string on_disk = test::read_file(state_file_);
  ASSERT_EQ(on_disk.size(), state.size());
  EXPECT_EQ(std::memcmp(on_disk.data(), state.data(), state.size()), 0);
  struct stat st {};
  ASSERT_EQ(::stat(state_file_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  ASSERT_EQ(::stat(socket_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);

  // The "daemon" crashes: its fd is gone, but ferryctl's copy keeps the "connection" open.
  write_end.reset();
  EXPECT_FALSE(hung_up(read_end.get()));

  child_.signal(SIGUSR1);
  ASSERT_TRUE(test::wait_until(
      [&] { return log_has("holding " + std::to_string(state.size()) + " bytes + fd"); }, 5s))
      << test::read_file(log_);

  // A successor takes over: it connects and waits; after the window ferryctl sends.
  auto taken = receive_state(socket_, 10s);
  ASSERT_TRUE(taken.ok()) << taken.error().message;
  EXPECT_EQ(taken->state, state);
  ASSERT_TRUE(taken->fd.valid());
  EXPECT_TRUE(same_inode(taken->fd.get(), read_end.get()));
  ASSERT_TRUE(
      test::wait_until([&] { return log_has("handed state to pid " + std::to_string(::getpid())); }, 5s))
      << test::read_file(log_);

  child_.signal(SIGTERM);
  int status = child_.wait_exit(10s).value_or(-1);
  ASSERT_NE(status, -1) << "ferryctl did not exit on SIGTERM";
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_FALSE(std::filesystem::exists(socket_));

  // ferryctl's copy is gone; ours (the successor's) still holds the pipe open.
  EXPECT_FALSE(hung_up(read_end.get()));
  taken->fd.reset();
  EXPECT_TRUE(hung_up(read_end.get()));
}

TEST_F(Ferryctl, RefusesBadSavesAndEmptyTakeoversWithoutLosingTheHeldState) {
  start();
  std::array<int, 2> p{};
  ASSERT_EQ(::pipe2(p.data(), O_CLOEXEC), 0);
  UniqueFd read_end(p[0]);
  UniqueFd write_end(p[1]);

  // A takeover with nothing held: the connection is closed at once.
  auto nothing = receive_state(socket_, 5s);
  ASSERT_TRUE(nothing.ok()) << nothing.error().message;
  EXPECT_TRUE(nothing->state.empty());
  EXPECT_FALSE(nothing->fd.valid());
  EXPECT_TRUE(test::wait_until([&] { return log_has("nothing is stored"); }, 5s)) << test::read_file(log_);

  Bytes good = seal(pattern(4000, 1), 1);
  ASSERT_TRUE(send_state(socket_, write_end.get(), good, 5s).ok());
  ASSERT_TRUE(test::wait_until([&] { return log_has("stored state: " + std::to_string(good.size())); }, 5s));

  // Bytes without an fd.
  {
    auto conn = connect_unix(socket_, Deadline::after(5s));
    ASSERT_TRUE(conn.ok());
    ASSERT_TRUE(send_all(conn->get(), pattern(100, 2), Deadline::after(5s)).ok());
  }
  EXPECT_TRUE(test::wait_until([&] { return log_has("but no fd attached"); }, 5s)) << test::read_file(log_);

  // A Ferry state cut short (the daemon died mid-save).
  Bytes cut = seal(pattern(4000, 3), 1);
  cut.resize(cut.size() / 2);
  UniqueFd other(::memfd_create("other", MFD_CLOEXEC));
  ASSERT_TRUE(send_state(socket_, other.get(), cut, 5s).ok());
  EXPECT_TRUE(test::wait_until([&] { return log_has("cut off"); }, 5s)) << test::read_file(log_);

  auto taken = receive_state(socket_, 5s);
  ASSERT_TRUE(taken.ok()) << taken.error().message;
  EXPECT_EQ(taken->state, good);
  EXPECT_TRUE(same_inode(taken->fd.get(), write_end.get()));

  // A second holder on the same socket is refused and leaves the first one alone.
  std::string out;
  EXPECT_EQ(test::run_shell(test::binary_path("ferryctl") + " supervisor --socket " + socket_, &out), 1) << out;
  EXPECT_NE(out.find("another process is listening"), std::string::npos) << out;
  EXPECT_TRUE(child_.running());
  EXPECT_TRUE(std::filesystem::exists(socket_));
}

}  // namespace
}  // namespace ferry::ipc
