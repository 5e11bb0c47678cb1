// Unit tests of src/ipc over real sockets and real fds: fd passing, the supervisor framing, the
// Supervisor holder and the state envelope.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <thread>

#include "common/result.h"
#include "common/unique_fd.h"
#include "ipc/fd_passing.h"
#include "ipc/state_envelope.h"
#include "ipc/supervisor.h"
#include "ipc/supervisor_wire.h"
#include "ipc/unix_socket.h"
#include "support/test_support.h"

namespace ferry::ipc {
namespace {

using namespace std::chrono_literals;
using Bytes = std::vector<std::byte>;

constexpr size_t kKiB = 1024;
constexpr size_t kMiB = kKiB * 1024;

// Deterministic, position-dependent bytes: a reordered, dropped or duplicated chunk shows.
Bytes pattern(size_t n, uint32_t seed = 1) {
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

UniqueFd make_memfd(const char* name = "ipc-test") {
  UniqueFd fd(::memfd_create(name, MFD_CLOEXEC));
  EXPECT_TRUE(fd.valid()) << std::strerror(errno);
  return fd;
}

// True when a and b are the SAME open file (not merely the same inode): moving the offset
// through one moves it for the other.
bool same_open_file(int a, int b) {
  struct stat sa {};
  struct stat sb {};
  if (::fstat(a, &sa) != 0 || ::fstat(b, &sb) != 0) return false;
  if (sa.st_dev != sb.st_dev || sa.st_ino != sb.st_ino) return false;
  const off_t probe = 4242;
  if (::lseek(a, probe, SEEK_SET) != probe) return false;
  bool shared = ::lseek(b, 0, SEEK_CUR) == probe;
  ::lseek(a, 0, SEEK_SET);
  return shared;
}

size_t open_fd_count() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

std::pair<UniqueFd, UniqueFd> socket_pair() {
  std::array<int, 2> sv{-1, -1};
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv.data()), 0);
  return {UniqueFd(sv[0]), UniqueFd(sv[1])};
}

// Sends `data` with `fds` attached in ONE raw sendmsg (to craft what our API never sends).
void raw_send_fds(int sock, const std::vector<int>& fds, std::span<const std::byte> data) {
  std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  iovec iov{const_cast<std::byte*>(data.data()), data.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
  std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  ASSERT_EQ(::sendmsg(sock, &msg, MSG_NOSIGNAL), static_cast<ssize_t>(data.size())) << std::strerror(errno);
}

// A connected client socket to `path`, raw (to play a misbehaving daemon).
UniqueFd raw_connect(const std::string& path) {
  auto conn = connect_unix(path, Deadline::after(2s));
  EXPECT_TRUE(conn.ok()) << conn.error().message;
  return conn.ok() ? std::move(*conn) : UniqueFd();
}

std::string text(const Error& e) {
  return std::to_string(e.code) + " " + e.message;
}

// ------------------------------------------------------------------------------------------
// fd_passing

TEST(FdPassing, DeliversTheSameOpenFileWithTheBytes) {
  auto [a, b] = socket_pair();
  UniqueFd mem = make_memfd();
  Bytes data = pattern(100);
  ASSERT_TRUE(send_with_fd(a.get(), mem.get(), data, Deadline::after(1s)).ok());

  Bytes buf(4096);
  auto chunk = recv_with_fd(b.get(), buf, Deadline::after(1s));
  ASSERT_TRUE(chunk.ok()) << chunk.error().message;
  ASSERT_EQ(chunk->size, data.size());
  EXPECT_TRUE(std::equal(data.begin(), data.end(), buf.begin()));
  ASSERT_TRUE(chunk->fd.valid());
  EXPECT_NE(chunk->fd.get(), mem.get());
  EXPECT_TRUE(same_open_file(mem.get(), chunk->fd.get()));
  EXPECT_EQ(chunk->extra_fds_closed, 0U);
  EXPECT_NE(::fcntl(chunk->fd.get(), F_GETFD) & FD_CLOEXEC, 0) << "received fds must be close-on-exec";
  // The sender still has its own fd.
  EXPECT_EQ(::fcntl(mem.get(), F_GETFD) >= 0, true);

  a.reset();
  auto eof = recv_with_fd(b.get(), buf, Deadline::after(1s));
  ASSERT_TRUE(eof.ok());
  EXPECT_EQ(eof->size, 0U);
  EXPECT_FALSE(eof->fd.valid());
}

TEST(FdPassing, LargeDataCarriesTheFdExactlyOnceOnTheFirstChunk) {
  auto [a, b] = socket_pair();
  UniqueFd mem = make_memfd();
  Bytes data = pattern(3 * kMiB + 7);
  Status sent;
  const int sender_sock = a.get();  // clang < 16 cannot capture structured bindings
  std::thread sender([&] { sent = send_with_fd(sender_sock, mem.get(), data, Deadline::after(10s)); });

  Bytes got;
  Bytes buf(4096);
  int fds_seen = 0;
  bool first_chunk_had_fd = false;
  size_t chunks = 0;
  while (got.size() < data.size()) {
    auto chunk = recv_with_fd(b.get(), buf, Deadline::after(10s));
    ASSERT_TRUE(chunk.ok()) << chunk.error().message;
    ASSERT_GT(chunk->size, 0U);
    if (chunk->fd) {
      ++fds_seen;
      if (chunks == 0) first_chunk_had_fd = true;
      EXPECT_TRUE(same_open_file(mem.get(), chunk->fd.get()));
    }
    got.insert(got.end(), buf.begin(), buf.begin() + static_cast<ptrdiff_t>(chunk->size));
    ++chunks;
  }
  sender.join();
  ASSERT_TRUE(sent.ok()) << sent.error().message;
  EXPECT_EQ(fds_seen, 1);
  EXPECT_TRUE(first_chunk_had_fd);
  EXPECT_GT(chunks, 1U);
  EXPECT_EQ(got, data);
}

TEST(FdPassing, RefusesAnEmptySpanAndAClosedFd) {
  auto [a, b] = socket_pair();
  UniqueFd mem = make_memfd();
  Status empty = send_with_fd(a.get(), mem.get(), {}, Deadline::after(1s));
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().code, EINVAL);

  Bytes data = pattern(10);
  int closed = mem.release();
  ::close(closed);
  Status bad = send_with_fd(a.get(), closed, data, Deadline::after(1s));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, EBADF);
}

TEST(FdPassing, ExtraFdsAreClosedAndCounted) {
  auto [a, b] = socket_pair();
  UniqueFd m1 = make_memfd("one");
  UniqueFd m2 = make_memfd("two");
  UniqueFd m3 = make_memfd("three");
  const size_t baseline = open_fd_count();
  raw_send_fds(a.get(), {m1.get(), m2.get(), m3.get()}, pattern(5));
  {
    Bytes buf(64);
    auto chunk = recv_with_fd(b.get(), buf, Deadline::after(1s));
    ASSERT_TRUE(chunk.ok()) << chunk.error().message;
    EXPECT_EQ(chunk->size, 5U);
    ASSERT_TRUE(chunk->fd.valid());
    EXPECT_TRUE(same_open_file(m1.get(), chunk->fd.get()));
    EXPECT_EQ(chunk->extra_fds_closed, 2U);
    EXPECT_EQ(open_fd_count(), baseline + 1);  // only the one we kept
  }
  EXPECT_EQ(open_fd_count(), baseline);
}

TEST(FdPassing, TruncatedControlDataIsAnErrorAndLeaksNothing) {
  auto [a, b] = socket_pair();
  std::vector<UniqueFd> mems;
  std::vector<int> raw;
  for (int i = 0; i < 20; ++i) {
    mems.push_back(make_memfd());
    raw.push_back(mems.back().get());
  }
  const size_t baseline = open_fd_count();
  raw_send_fds(a.get(), raw, pattern(5));
  Bytes buf(64);
  auto chunk = recv_with_fd(b.get(), buf, Deadline::after(1s));
  ASSERT_FALSE(chunk.ok());
  EXPECT_EQ(chunk.error().code, EPROTO);
  EXPECT_NE(chunk.error().message.find("MSG_CTRUNC"), std::string::npos) << chunk.error().message;
  EXPECT_EQ(open_fd_count(), baseline);
}

TEST(FdPassing, WaitsEndAtTheDeadlineOrOnCancel) {
  auto [a, b] = socket_pair();
  Bytes buf(16);
  auto start = Clock::now();
  auto timed_out = recv_with_fd(b.get(), buf, Deadline::after(60ms));
  auto took = Clock::now() - start;
  ASSERT_FALSE(timed_out.ok());
  EXPECT_EQ(timed_out.error().code, ETIMEDOUT);
  EXPECT_NE(timed_out.error().message.find("60 ms"), std::string::npos) << timed_out.error().message;
  EXPECT_GE(took, 60ms);
  EXPECT_LT(took, 2s);

  UniqueFd cancel(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  std::thread canceller([&] {
    std::this_thread::sleep_for(30ms);
    uint64_t one = 1;
    EXPECT_EQ(::write(cancel.get(), &one, sizeof(one)), 8);
  });
  start = Clock::now();
  auto cancelled = recv_with_fd(b.get(), buf, Deadline::after(10s, cancel.get()));
  took = Clock::now() - start;
  canceller.join();
  ASSERT_FALSE(cancelled.ok());
  EXPECT_EQ(cancelled.error().code, ECANCELED);
  EXPECT_LT(took, 5s);
}

TEST(FdPassing, SendingToAPeerThatDoesNotReadTimesOut) {
  auto [a, b] = socket_pair();
  Bytes data = pattern(8 * kMiB);
  Status s = send_all(a.get(), data, Deadline::after(100ms));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ETIMEDOUT);
  EXPECT_NE(s.error().message.find("bytes sent"), std::string::npos) << s.error().message;
}

TEST(FdPassing, AVanishedPeerIsEpipeNotSigpipe) {
  auto [a, b] = socket_pair();
  b.reset();
  UniqueFd mem = make_memfd();
  Status s = send_with_fd(a.get(), mem.get(), pattern(10), Deadline::after(1s));
  ASSERT_FALSE(s.ok());  // and the process is still alive
  EXPECT_EQ(s.error().code, EPIPE);
}

// ------------------------------------------------------------------------------------------
// UnixListener

TEST(UnixListener, CreatesTheSocketWithMode0600AndRemovesItOnDestruction) {
  test::TempDir dir;
  const std::string path = dir / "s.sock";
  {
    auto l = UnixListener::listen(path);
    ASSERT_TRUE(l.ok()) << l.error().message;
    struct stat st {};
    ASSERT_EQ(::lstat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0600U);
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(UnixListener, ReplacesAStaleSocketRefusesALiveOneAndANonSocket) {
  test::TempDir dir;
  const std::string path = dir / "s.sock";
  {  // A stale socket: bound, never listened on, closed without unlink (a crashed holder).
    UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size());
    ASSERT_EQ(::bind(s.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)), 0);
  }
  ASSERT_TRUE(std::filesystem::exists(path));
  auto first = UnixListener::listen(path);
  ASSERT_TRUE(first.ok()) << first.error().message;

  auto second = UnixListener::listen(path);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, EADDRINUSE);
  EXPECT_NE(second.error().message.find(path), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(path)) << "a refused listener must not remove the live socket";

  const std::string file = dir / "plain";
  std::ofstream(file) << "keep me";
  auto on_file = UnixListener::listen(file);
  ASSERT_FALSE(on_file.ok());
  EXPECT_EQ(on_file.error().code, EEXIST);
  std::ifstream in(file);
  std::string content;
  std::getline(in, content);
  EXPECT_EQ(content, "keep me");
}

TEST(UnixListener, LeavesASocketThatIsNoLongerItsOwn) {
  test::TempDir dir;
  const std::string path = dir / "s.sock";
  auto first = UnixListener::listen(path);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(::unlink(path.c_str()), 0);  // e.g. a successor removed it and bound its own
  auto successor = UnixListener::listen(path);
  ASSERT_TRUE(successor.ok()) << successor.error().message;
  { UnixListener gone = std::move(*first); }
  EXPECT_TRUE(std::filesystem::exists(path));
}

TEST(UnixListener, ConnectErrorsNameThePathAndTheReason) {
  test::TempDir dir;
  auto missing = connect_unix(dir / "none.sock", Deadline::after(1s));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ENOENT);
  EXPECT_NE(missing.error().message.find(dir / "none.sock"), std::string::npos);

  auto too_long = connect_unix("/" + std::string(200, 'x'), Deadline::after(1s));
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.error().code, ENAMETOOLONG);
}

// ------------------------------------------------------------------------------------------
// supervisor_wire

class Wire : public ::testing::TestWithParam<size_t> {
 protected:
  test::TempDir dir_;
  std::string path_ = dir_ / "supervisor.sock";
};

TEST_P(Wire, SendStateDeliversEveryByteAndTheFd) {
  auto listener = UnixListener::listen(path_);
  ASSERT_TRUE(listener.ok());
  UniqueFd mem = make_memfd();
  Bytes data = pattern(GetParam(), 7);
  std::optional<Result<Handover>> got;
  std::thread holder([&] {
    auto conn = listener->accept(Deadline::after(10s));
    if (!conn.ok()) {
      got.emplace(conn.error());
      return;
    }
    got.emplace(read_handover(conn->get(), Deadline::after(10s)));
  });
  Status sent = send_state(path_, mem.get(), data, 10s);
  holder.join();
  ASSERT_TRUE(sent.ok()) << sent.error().message;
  ASSERT_TRUE(got.has_value() && got->ok()) << text(got->error());
  EXPECT_EQ((*got)->state.size(), data.size());
  EXPECT_EQ((*got)->state, data);
  ASSERT_TRUE((*got)->fd.valid());
  EXPECT_TRUE(same_open_file(mem.get(), (*got)->fd.get()));
  EXPECT_NE(::fcntl(mem.get(), F_GETFD), -1) << "the caller keeps its own fd";
}

TEST_P(Wire, ReceiveStateReadsEveryByteAndTheFd) {
  auto listener = UnixListener::listen(path_);
  ASSERT_TRUE(listener.ok());
  UniqueFd mem = make_memfd();
  Bytes data = pattern(GetParam(), 9);
  Status written;
  std::thread holder([&] {
    auto conn = listener->accept(Deadline::after(10s));
    written =
        conn.ok() ? write_handover(conn->get(), mem.get(), data, Deadline::after(10s)) : Status(conn.error());
  });
  auto got = receive_state(path_, 10s);
  holder.join();
  ASSERT_TRUE(written.ok()) << written.error().message;
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(got->state, data);
  ASSERT_TRUE(got->fd.valid());
  EXPECT_TRUE(same_open_file(mem.get(), got->fd.get()));
}

// 32 KiB is where the reference implementation truncated.
INSTANTIATE_TEST_SUITE_P(Sizes, Wire,
                         ::testing::Values(1, 32 * kKiB - 1, 32 * kKiB, 32 * kKiB + 1, 1 * kMiB, 5 * kMiB),
                         [](const auto& param_info) { return "bytes_" + std::to_string(param_info.param); });

class WireErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    auto l = UnixListener::listen(path_);
    ASSERT_TRUE(l.ok());
    listener_.emplace(std::move(*l));
  }
  test::TempDir dir_;
  std::string path_ = dir_ / "supervisor.sock";
  std::optional<UnixListener> listener_;
};

TEST_F(WireErrors, AnEmptyStateIsRefusedBecauseItCannotCarryTheFd) {
  UniqueFd mem = make_memfd();
  Status s = send_state(path_, mem.get(), {}, 1s);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, EINVAL);
  EXPECT_NE(s.error().message.find("empty"), std::string::npos) << s.error().message;
}

TEST_F(WireErrors, NoSupervisorListeningIsNamed) {
  listener_.reset();
  UniqueFd mem = make_memfd();
  Status s = send_state(path_, mem.get(), pattern(10), 1s);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ENOENT);
  EXPECT_NE(s.error().message.find(path_), std::string::npos) << s.error().message;
}

TEST_F(WireErrors, AMissingFdIsAnInvalidFdAndAnEmptyAnswerIsEmpty) {
  Bytes data = pattern(1000);
  std::thread holder([&] {
    auto conn = listener_->accept(Deadline::after(5s));
    ASSERT_TRUE(conn.ok());
    EXPECT_TRUE(write_handover(conn->get(), -1, data, Deadline::after(5s)).ok());
    auto empty = listener_->accept(Deadline::after(5s));
    ASSERT_TRUE(empty.ok());  // closed at once: "nothing stored"
  });
  auto no_fd = receive_state(path_, 5s);
  ASSERT_TRUE(no_fd.ok()) << no_fd.error().message;
  EXPECT_FALSE(no_fd->fd.valid());
  EXPECT_EQ(no_fd->state, data);
  auto nothing = receive_state(path_, 5s);
  holder.join();
  ASSERT_TRUE(nothing.ok()) << nothing.error().message;
  EXPECT_FALSE(nothing->fd.valid());
  EXPECT_TRUE(nothing->state.empty());
}

TEST_F(WireErrors, MoreThanTheBoundIsRefused) {
  UniqueFd mem = make_memfd();
  Bytes data = pattern(100 * kKiB);
  std::thread holder([&] {
    auto conn = listener_->accept(Deadline::after(5s));
    ASSERT_TRUE(conn.ok());
    (void)write_handover(conn->get(), mem.get(), data, Deadline::after(5s));
  });
  auto got = receive_state(path_, 5s, 100 * kKiB - 1);
  holder.join();
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code, EFBIG);

  // Exactly at the bound is fine.
  std::thread holder2([&] {
    auto conn = listener_->accept(Deadline::after(5s));
    ASSERT_TRUE(conn.ok());
    EXPECT_TRUE(write_handover(conn->get(), mem.get(), data, Deadline::after(5s)).ok());
  });
  auto exact = receive_state(path_, 5s, 100 * kKiB);
  holder2.join();
  ASSERT_TRUE(exact.ok()) << exact.error().message;
  EXPECT_EQ(exact->state.size(), 100 * kKiB);
}

TEST_F(WireErrors, ASecondFdIsAProtocolErrorAndLeaksNothing) {
  UniqueFd m1 = make_memfd();
  UniqueFd m2 = make_memfd();
  const size_t baseline = open_fd_count();
  std::thread holder([&] {
    auto conn = listener_->accept(Deadline::after(5s));
    ASSERT_TRUE(conn.ok());
    raw_send_fds(conn->get(), {m1.get()}, pattern(10));
    raw_send_fds(conn->get(), {m2.get()}, pattern(10));
  });
  auto got = receive_state(path_, 5s);
  holder.join();
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code, EPROTO);
  EXPECT_EQ(open_fd_count(), baseline);
}

TEST_F(WireErrors, ASupervisorThatClosesWithoutReadingEverythingFailsTheSave) {
  UniqueFd mem = make_memfd();
  std::thread holder([&] {
    auto conn = listener_->accept(Deadline::after(5s));
    ASSERT_TRUE(conn.ok());
    Bytes buf(10);
    (void)recv_with_fd(conn->get(), buf, Deadline::after(5s));
    // closes with most of the state unread
  });
  Status s = send_state(path_, mem.get(), pattern(64 * kKiB), 5s);
  holder.join();
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(s.error().code == ECONNRESET || s.error().code == EPIPE) << text(s.error());
}

TEST_F(WireErrors, ASupervisorThatNeverReadsTimesOutTheSave) {
  UniqueFd mem = make_memfd();
  UniqueFd held;
  std::thread holder([&] {
    auto conn = listener_->accept(Deadline::after(5s));
    ASSERT_TRUE(conn.ok());
    held = std::move(*conn);  // accepted, never read
  });
  auto start = Clock::now();
  Status s = send_state(path_, mem.get(), pattern(100), 200ms);
  auto took = Clock::now() - start;
  holder.join();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ETIMEDOUT) << s.error().message;
  EXPECT_LT(took, 3s);
}

TEST_F(WireErrors, ASupervisorThatReadsEverythingButKeepsTheConnectionOpenIsFine) {
  UniqueFd mem = make_memfd();
  Bytes data = pattern(200 * kKiB);
  std::atomic<bool> done{false};
  std::thread holder([&] {
    auto conn = listener_->accept(Deadline::after(5s));
    ASSERT_TRUE(conn.ok());
    Bytes buf(data.size());
    size_t got = 0;
    while (got < data.size()) {
      auto c = recv_with_fd(conn->get(), std::span(buf).subspan(got), Deadline::after(5s));
      ASSERT_TRUE(c.ok());
      ASSERT_GT(c->size, 0U);
      got += c->size;
    }
    test::wait_until([&] { return done.load(); }, 5s);  // keeps the connection open meanwhile
  });
  Status s = send_state(path_, mem.get(), data, 5s);
  done = true;
  holder.join();
  EXPECT_TRUE(s.ok()) << s.error().message;
}

// ------------------------------------------------------------------------------------------
// Supervisor

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = Supervisor::listen(path_);
    ASSERT_TRUE(s.ok()) << s.error().message;
    sup_ = std::move(*s);
  }

  // A save the way the daemon does it, called synchronously from the trigger (as an HTTP
  // handler that answers only once the state was read would be).
  Result<Supervisor::Exchange> save(int fd, const Bytes& data, std::chrono::milliseconds timeout = 10s) {
    return sup_->receive([&] { return send_state(path_, fd, data, timeout); }, timeout);
  }

  // A takeover the way the daemon does it, as the trigger of Supervisor::send.
  Status take_over(Handover& out) {
    auto r = receive_state(path_, 10s);
    if (!r.ok()) return r.error();
    out = std::move(*r);
    return ok_status();
  }

  test::TempDir dir_;
  std::string path_ = dir_ / "daemon-1.sock";
  std::unique_ptr<Supervisor> sup_;
};

class SupervisorSizes : public SupervisorTest, public ::testing::WithParamInterface<size_t> {};

TEST_P(SupervisorSizes, SaveThenTakeoverRoundTrips) {
  UniqueFd mem = make_memfd();
  Bytes data = pattern(GetParam(), 3);
  auto saved = save(mem.get(), data);
  ASSERT_TRUE(saved.ok()) << saved.error().message;
  EXPECT_EQ(saved->bytes, data.size());
  EXPECT_EQ(saved->peer.pid, ::getpid());
  EXPECT_TRUE(sup_->has_state());
  EXPECT_TRUE(sup_->has_fd());
  EXPECT_EQ(sup_->state_size(), data.size());
  EXPECT_EQ(sup_->state(), data);
  EXPECT_TRUE(same_open_file(mem.get(), sup_->fd()));

  Handover taken;
  auto sent = sup_->send([&] { return take_over(taken); }, 10s);
  ASSERT_TRUE(sent.ok()) << sent.error().message;
  EXPECT_EQ(sent->bytes, data.size());
  EXPECT_EQ(taken.state, data);
  ASSERT_TRUE(taken.fd.valid());
  EXPECT_TRUE(same_open_file(mem.get(), taken.fd.get()));
  EXPECT_TRUE(sup_->has_fd()) << "a takeover keeps the stored state (it may have to be retried)";
}

INSTANTIATE_TEST_SUITE_P(Sizes, SupervisorSizes,
                         ::testing::Values(1, 32 * kKiB - 1, 32 * kKiB, 32 * kKiB + 1, 1 * kMiB, 5 * kMiB),
                         [](const auto& param_info) { return "bytes_" + std::to_string(param_info.param); });

TEST_F(SupervisorTest, TheSocketIsPrivateAndRemovedWithTheSupervisor) {
  struct stat st {};
  ASSERT_EQ(::lstat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600U);
  EXPECT_EQ(sup_->path(), path_);
  auto again = Supervisor::listen(path_);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, EADDRINUSE);
  sup_.reset();
  EXPECT_FALSE(std::filesystem::exists(path_));
}

TEST_F(SupervisorTest, HoldingTheFdKeepsTheFileOpenAndAReplacedOneIsClosed) {
  // A pipe stands in for /dev/fuse: its read end sees EOF exactly when the last write end closes.
  std::array<int, 2> p1{};
  std::array<int, 2> p2{};
  ASSERT_EQ(::pipe2(p1.data(), O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(p2.data(), O_CLOEXEC), 0);
  UniqueFd r1(p1[0]);
  UniqueFd w1(p1[1]);
  UniqueFd r2(p2[0]);
  UniqueFd w2(p2[1]);
  auto hung_up = [](int fd) {
    pollfd pfd{fd, POLLIN, 0};
    return ::poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLHUP) != 0;
  };

  ASSERT_TRUE(save(w1.get(), pattern(10)).ok());
  w1.reset();
  EXPECT_FALSE(hung_up(r1.get())) << "the supervisor's copy keeps the first 'connection' alive";

  ASSERT_TRUE(save(w2.get(), pattern(20)).ok());
  w2.reset();
  EXPECT_TRUE(hung_up(r1.get())) << "the replaced fd must be closed";
  EXPECT_FALSE(hung_up(r2.get()));

  sup_.reset();
  EXPECT_TRUE(hung_up(r2.get()));
}

TEST_F(SupervisorTest, AFailedSaveKeepsThePreviousStateAndSaysWhy) {
  UniqueFd mem = make_memfd();
  Bytes first = pattern(5000, 11);
  ASSERT_TRUE(save(mem.get(), first).ok());
  auto unchanged = [&] {
    EXPECT_EQ(sup_->state(), first);
    EXPECT_TRUE(same_open_file(mem.get(), sup_->fd()));
  };

  // Bytes but no fd, then close.
  auto no_fd = sup_->receive(
      [&] {
        UniqueFd c = raw_connect(path_);
        return send_all(c.get(), pattern(3000), Deadline::after(2s));
      },
      2s);
  ASSERT_FALSE(no_fd.ok());
  EXPECT_EQ(no_fd.error().code, EPROTO);
  EXPECT_NE(no_fd.error().message.find("no fd"), std::string::npos) << no_fd.error().message;
  EXPECT_NE(no_fd.error().message.find("previous state kept"), std::string::npos) << no_fd.error().message;
  unchanged();

  // Connected, sent nothing, closed.
  auto nothing = sup_->receive(
      [&] {
        return raw_connect(path_) ? ok_status() : Status(Error{EIO, "connect"});
      },
      2s);
  ASSERT_FALSE(nothing.ok());
  EXPECT_EQ(nothing.error().code, ENODATA);
  unchanged();

  // Nobody connects.
  auto start = Clock::now();
  auto timeout = sup_->receive([] { return ok_status(); }, 150ms);
  EXPECT_GE(Clock::now() - start, 150ms);
  ASSERT_FALSE(timeout.ok());
  EXPECT_EQ(timeout.error().code, ETIMEDOUT);
  EXPECT_NE(timeout.error().message.find("no connection"), std::string::npos) << timeout.error().message;
  unchanged();

  // The fd and half of the state arrive, then the daemon hangs (connection left open).
  UniqueFd hanging;
  auto halfway = sup_->receive(
      [&] {
        hanging = raw_connect(path_);
        return send_with_fd(hanging.get(), mem.get(), pattern(2000), Deadline::after(2s));
      },
      200ms);
  ASSERT_FALSE(halfway.ok());
  EXPECT_EQ(halfway.error().code, ETIMEDOUT) << halfway.error().message;
  hanging.reset();
  unchanged();
}

// A daemon that dies after sending the fd and part of its state closes the connection like one
// that finished: by the framing (EOF = end of message) that is a complete message. Only the
// envelope's length and CRC can tell, which is what Options::validate is for.
TEST_F(SupervisorTest, AValidatorRejectsASaveCutShortByADyingDaemon) {
  sup_.reset();
  Supervisor::Options options;
  options.validate = [](std::span<const std::byte> state) -> Status {
    auto opened = open_envelope(state, UINT32_MAX);
    if (!opened.ok()) return opened.error();
    return ok_status();
  };
  auto s = Supervisor::listen(path_, options);
  ASSERT_TRUE(s.ok()) << s.error().message;
  sup_ = std::move(*s);

  UniqueFd mem = make_memfd();
  Bytes first = seal(pattern(5000, 1), 1);
  ASSERT_TRUE(save(mem.get(), first).ok());

  UniqueFd other = make_memfd();
  Bytes second = seal(pattern(5000, 2), 1);
  auto died = sup_->receive(
      [&] {
        UniqueFd c = raw_connect(path_);
        // fd + the first half, then the "process" is gone: its socket closes.
        return send_with_fd(c.get(), other.get(), std::span(second).first(2500), Deadline::after(2s));
      },
      2s);
  ASSERT_FALSE(died.ok());
  EXPECT_EQ(died.error().code, kEnvelopeLengthMismatch) << died.error().message;
  EXPECT_NE(died.error().message.find("rejected"), std::string::npos) << died.error().message;
  EXPECT_EQ(sup_->state(), first);
  EXPECT_TRUE(same_open_file(mem.get(), sup_->fd()));

  ASSERT_TRUE(save(other.get(), second).ok());
  EXPECT_EQ(sup_->state(), second);
}

TEST_F(SupervisorTest, AFailingTriggerCancelsTheWaitAtOnceAndKeepsTheState) {
  UniqueFd mem = make_memfd();
  Bytes first = pattern(100);
  ASSERT_TRUE(save(mem.get(), first).ok());
  auto start = Clock::now();
  auto r = sup_->receive([] { return Status(Error{EAGAIN, "HTTP 503: FUSE_INIT not negotiated yet"}); }, 10s);
  auto took = Clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, EAGAIN);
  EXPECT_NE(r.error().message.find("the trigger failed: HTTP 503"), std::string::npos) << r.error().message;
  EXPECT_LT(took, 2s);
  EXPECT_EQ(sup_->state(), first);

  auto s = sup_->send([] { return Status(Error{EIO, "HTTP 400: wrong state"}); }, 10s);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("HTTP 400"), std::string::npos) << s.error().message;
  EXPECT_LT(Clock::now() - start, 4s);
  EXPECT_EQ(sup_->state(), first);
}

TEST_F(SupervisorTest, AFailedSaveThatAlreadyArrivedIsStillDiscardedWhenTheTriggerFails) {
  UniqueFd mem = make_memfd();
  Bytes first = pattern(100, 1);
  ASSERT_TRUE(save(mem.get(), first).ok());
  UniqueFd other = make_memfd();
  auto r = sup_->receive(
      [&] {
        EXPECT_TRUE(send_state(path_, other.get(), pattern(100, 2), 5s).ok());
        return Status(Error{EIO, "HTTP 500 after sending"});
      },
      5s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(sup_->state(), first);
  EXPECT_TRUE(same_open_file(mem.get(), sup_->fd()));
}

TEST_F(SupervisorTest, ConnectionsQueuedBeforeTheRequestAreDropped) {
  UniqueFd early = raw_connect(path_);  // e.g. a late answer to an earlier, timed-out request
  ASSERT_TRUE(send_all(early.get(), pattern(50, 99), Deadline::after(1s)).ok());
  UniqueFd mem = make_memfd();
  Bytes data = pattern(1000, 5);
  auto r = save(mem.get(), data);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(sup_->state(), data);
}

TEST_F(SupervisorTest, SendRefusesWhenThereIsNothingToHandOver) {
  bool called = false;
  auto empty = sup_->send([&] { return called = true, ok_status(); }, 1s);
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().code, ENOENT);
  EXPECT_FALSE(called);
  EXPECT_NE(empty.error().message.find("nothing is stored"), std::string::npos) << empty.error().message;

  sup_->store(UniqueFd(), pattern(100));  // e.g. loaded from disk after a manager restart
  EXPECT_TRUE(sup_->has_state());
  EXPECT_FALSE(sup_->has_fd());
  EXPECT_EQ(sup_->fd(), -1);
  auto no_fd = sup_->send([&] { return called = true, ok_status(); }, 1s);
  ASSERT_FALSE(no_fd.ok());
  EXPECT_EQ(no_fd.error().code, ENOTCONN);
  EXPECT_FALSE(called);
  auto dup = sup_->dup_fd();
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code, ENOTCONN);
}

TEST_F(SupervisorTest, ATakeoverNobodyPicksUpTimesOutAndKeepsTheState) {
  UniqueFd mem = make_memfd();
  Bytes data = pattern(100);
  ASSERT_TRUE(save(mem.get(), data).ok());
  auto r = sup_->send([] { return ok_status(); }, 100ms);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ETIMEDOUT);
  EXPECT_EQ(sup_->state(), data);
}

TEST_F(SupervisorTest, StoreStateDupAndClear) {
  UniqueFd mem = make_memfd();
  int raw = mem.get();
  Bytes data = pattern(64);
  sup_->store(std::move(mem), data);
  EXPECT_TRUE(sup_->has_state());
  EXPECT_TRUE(sup_->has_fd());
  EXPECT_EQ(sup_->fd(), raw);
  EXPECT_EQ(sup_->state_size(), 64U);
  EXPECT_EQ(sup_->state(), data);
  auto dup = sup_->dup_fd();
  ASSERT_TRUE(dup.ok());
  EXPECT_TRUE(same_open_file(raw, dup->get()));
  EXPECT_NE(::fcntl(dup->get(), F_GETFD) & FD_CLOEXEC, 0);

  // A stored state can be handed over like a received one.
  Handover taken;
  auto sent = sup_->send([&] { return take_over(taken); }, 5s);
  ASSERT_TRUE(sent.ok()) << sent.error().message;
  EXPECT_EQ(taken.state, data);

  sup_->clear();
  EXPECT_FALSE(sup_->has_state());
  EXPECT_FALSE(sup_->state().has_value());
  EXPECT_EQ(sup_->state_size(), 0U);
  EXPECT_NE(::fcntl(dup->get(), F_GETFD), -1) << "our dup outlives the cleared state";
}

TEST_F(SupervisorTest, TheSizeBoundIsEnforced) {
  sup_.reset();
  Supervisor::Options options;
  options.max_state_bytes = 1000;
  auto s = Supervisor::listen(path_, options);
  ASSERT_TRUE(s.ok()) << s.error().message;
  sup_ = std::move(*s);
  UniqueFd mem = make_memfd();
  ASSERT_TRUE(save(mem.get(), pattern(1000)).ok());
  auto big = sup_->receive(
      [&] {
        (void)send_state(path_, mem.get(), pattern(1001), 2s);  // fails on its side too
        return ok_status();
      },
      2s);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code, EFBIG);
  EXPECT_EQ(sup_->state_size(), 1000U);
}

TEST_F(SupervisorTest, AccessorsAreSafeDuringAnExchange) {
  UniqueFd mem = make_memfd();
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    while (!stop) {
      auto st = sup_->state();
      if (st) {
        EXPECT_TRUE(st->size() == 1000 || st->size() == 2000);
      }
      (void)sup_->has_fd();
      (void)sup_->state_size();
    }
  });
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(save(mem.get(), pattern(i % 2 == 0 ? 1000 : 2000, static_cast<uint32_t>(i))).ok());
  }
  stop = true;
  reader.join();
}

// ------------------------------------------------------------------------------------------
// state_envelope

Bytes as_bytes(std::string_view s) {
  Bytes out(s.size());
  std::memcpy(out.data(), s.data(), s.size());
  return out;
}

TEST(StateEnvelope, RoundTripsAnyPayload) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{1000}, 100 * kKiB}) {
    Bytes payload = pattern(n, 4);
    Bytes sealed = seal(payload, 3);
    ASSERT_EQ(sealed.size(), kEnvelopeHeaderSize + n);
    auto opened = open_envelope(sealed, 3);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    EXPECT_EQ(opened->version, 3U);
    EXPECT_EQ(opened->flags, 0U);
    EXPECT_EQ(opened->payload.size(), n);
    EXPECT_TRUE(std::equal(payload.begin(), payload.end(), opened->payload.begin()));
    EXPECT_EQ(opened->payload.data(), sealed.data() + kEnvelopeHeaderSize) << "a view, not a copy";
    EXPECT_TRUE(open_envelope(sealed, 7).ok()) << "older versions are readable by newer binaries";
  }
}

TEST(StateEnvelope, HeaderLayoutIsLittleEndianAndTheChecksumIsStandardCrc32c) {
  EXPECT_EQ(envelope_crc32c(as_bytes("123456789")), 0xE3069283U);
  Bytes sealed = seal(as_bytes("123456789"), 0x01020304);
  ASSERT_EQ(sealed.size(), 28U + 9U);
  EXPECT_EQ(std::memcmp(sealed.data(), "FERRYST1", 8), 0);
  const Bytes expected_header = {
      std::byte{0x04}, std::byte{0x03}, std::byte{0x02}, std::byte{0x01},  // version
      std::byte{0},    std::byte{0},    std::byte{0},    std::byte{0},     // flags
      std::byte{9},    std::byte{0},    std::byte{0},    std::byte{0},     // length (u64)
      std::byte{0},    std::byte{0},    std::byte{0},    std::byte{0},     //
      std::byte{0x83}, std::byte{0x92}, std::byte{0x06}, std::byte{0xE3},  // CRC-32C
  };
  EXPECT_TRUE(std::equal(expected_header.begin(), expected_header.end(), sealed.begin() + 8));
}

TEST(StateEnvelope, EachProblemHasItsOwnCodeAndMessage) {
  const Bytes good = seal(pattern(500), 2);
  std::set<std::string> messages;
  auto expect_error = [&](std::span<const std::byte> bytes, uint32_t max, int code, const char* word) {
    auto r = open_envelope(bytes, max);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, code) << r.error().message;
    EXPECT_NE(r.error().message.find(word), std::string::npos) << r.error().message;
    messages.insert(r.error().message);
  };

  expect_error({}, 2, kEnvelopeTruncated, "truncated");
  expect_error(std::span(good).first(7), 2, kEnvelopeTruncated, "truncated");
  expect_error(std::span(good).first(kEnvelopeHeaderSize - 1), 2, kEnvelopeTruncated, "truncated");

  Bytes nydus = as_bytes("NYDUS_ST\x01\x00\x00\x00 and its own payload");
  expect_error(nydus, 2, kEnvelopeForeign, "not a Ferry state");
  Bytes flipped_magic = good;
  flipped_magic[0] ^= std::byte{0x20};
  expect_error(flipped_magic, 2, kEnvelopeForeign, "magic");

  expect_error(good, 1, kEnvelopeTooNew, "newer");

  expect_error(std::span(good).first(good.size() - 1), 2, kEnvelopeLengthMismatch, "cut off");
  Bytes trailing = good;
  trailing.push_back(std::byte{0});
  expect_error(trailing, 2, kEnvelopeLengthMismatch, "trailing");
  Bytes huge_length = good;
  for (size_t i = 16; i < 24; ++i) huge_length[i] = std::byte{0xFF};
  expect_error(huge_length, 2, kEnvelopeLengthMismatch, "18446744073709551615");

  Bytes corrupt = good;
  corrupt[kEnvelopeHeaderSize + 123] ^= std::byte{0x01};
  expect_error(corrupt, 2, kEnvelopeChecksum, "CRC-32C");
  Bytes bad_crc = good;
  bad_crc[24] ^= std::byte{0x80};
  expect_error(bad_crc, 2, kEnvelopeChecksum, "corrupt");

  std::set<int> codes = {kEnvelopeTruncated, kEnvelopeForeign, kEnvelopeTooNew, kEnvelopeLengthMismatch,
                         kEnvelopeChecksum};
  EXPECT_EQ(codes.size(), 5U) << "the codes must be distinct";
}

TEST(StateEnvelope, ArbitraryBytesNeverCrash) {
  // A small in-process fuzz (the real one is fuzz/state_envelope_fuzz.cc): random prefixes of
  // valid envelopes, random header fields, random lengths. Run under ASan/UBSan to mean much.
  Bytes base = seal(pattern(64), 1);
  uint32_t x = 12345;
  auto next = [&] {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return x;
  };
  for (int i = 0; i < 20000; ++i) {
    Bytes b(base.begin(), base.begin() + static_cast<ptrdiff_t>(next() % (base.size() + 1)));
    for (int k = 0; k < 3 && !b.empty(); ++k) b[next() % b.size()] = static_cast<std::byte>(next());
    auto r = open_envelope(b, next() % 4);
    if (r.ok()) {
      EXPECT_LE(r->payload.size(), b.size());
      EXPECT_GE(r->payload.data(), b.data());
    }
  }
}

}  // namespace
}  // namespace ferry::ipc
