// `ferryctl supervisor`: a foreground holder for ONE daemon's state and /dev/fuse fd, so that
// a person can save a daemon's state and hand it to a successor without a manager.
//
// The manager's Supervisor (ipc/supervisor.h) knows whether it asked the daemon to save or to
// take over. A person using curl does not tell us, so this command guesses from the peer's
// behaviour on the one socket: a saving daemon writes (fd + state) right after connecting; a
// daemon taking over connects and waits to read. After accepting, we wait `--window` ms for
// the connection to become readable: data -> a save (replaces the stored state unless it has
// no fd or is a Ferry envelope that fails its check); nothing -> a takeover request (gets the
// stored state + fd). A saver slower than the window would be taken
// for a taker: keep the window well above the daemon's connect-to-write time.
//
// Connections are served one at a time, each within --timeout. SIGINT/SIGTERM end the
// program (exit 0, the socket file removed; any transfer in progress is abandoned); SIGUSR1
// prints what is held.
#include <fcntl.h>
#include <fmt/core.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "ipc/state_envelope.h"
#include "ipc/supervisor_wire.h"
#include "ipc/unix_socket.h"
#include "tools/ferryctl/command.h"

namespace ferry::ctl {
namespace {

using namespace std::chrono_literals;

struct SupervisorOptions {
  std::string socket;
  std::string state_file;
  int window_ms = 200;
  int timeout_ms = 10000;
};

// One line per event on stdout, flushed at once (stdout is often a pipe or a log file).
template <typename... Args>
void say(fmt::format_string<Args...> format, Args&&... args) {
  fmt::print(stdout, format, std::forward<Args>(args)...);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

void say_line(const std::string& line) {
  say("{}", line);
}

Status write_all(int fd, std::span<const std::byte> data, const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("writing " + path);
    done += static_cast<size_t>(n);
  }
  return ok_status();
}

// Replaces `path` atomically (temp file, fsync, rename), mode 0600: the state may name images
// and their configuration.
Status write_file_atomically(const std::string& path, std::span<const std::byte> data) {
  const std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return errno_error("creating " + tmp);
  Status s = write_all(fd.get(), data, tmp);
  if (s.ok() && ::fsync(fd.get()) != 0) s = errno_error("fsync " + tmp);
  fd.reset();
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) s = errno_error("renaming " + tmp + " to " + path);
  if (!s.ok()) ::unlink(tmp.c_str());
  return s;
}

Result<UniqueFd> signal_fd(std::initializer_list<int> signals) {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : signals) sigaddset(&set, sig);
  // Blocked so they are only ever delivered through the fd (single-threaded program).
  if (::sigprocmask(SIG_BLOCK, &set, nullptr) != 0) return errno_error("sigprocmask");
  UniqueFd fd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!fd) return errno_error("signalfd");
  return fd;
}

int read_signal(int fd) {
  signalfd_siginfo info{};
  while (true) {
    ssize_t n = ::read(fd, &info, sizeof(info));
    if (n == static_cast<ssize_t>(sizeof(info))) return static_cast<int>(info.ssi_signo);
    if (n < 0 && errno == EINTR) continue;
    return 0;
  }
}

class Holder {
 public:
  Holder(SupervisorOptions options, ipc::UnixListener listener, UniqueFd stop_fd, UniqueFd status_fd)
      : options_(std::move(options)),
        listener_(std::move(listener)),
        stop_fd_(std::move(stop_fd)),
        status_fd_(std::move(status_fd)) {}

  int run() {
    say("listening on {} (pid {}); save: PUT /api/v1/daemon/fuse/sendfd, takeover: start ferryd with "
        "--upgrade and PUT /api/v1/daemon/fuse/takeover",
        listener_.path().c_str(), static_cast<int>(::getpid()));
    while (true) {
      std::array<pollfd, 3> fds{
          {{listener_.fd(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}, {status_fd_.get(), POLLIN, 0}}};
      if (::poll(fds.data(), fds.size(), -1) < 0) {
        if (errno == EINTR) continue;
        std::fprintf(stderr, "ferryctl supervisor: poll: %s\n", std::strerror(errno));
        return 1;
      }
      if (fds[1].revents != 0) {
        int sig = read_signal(stop_fd_.get());
        say("received {}: exiting{}", sig == SIGINT ? "SIGINT" : "SIGTERM",
            fd_ ? " (closing the held fd: without a daemon serving it, the FUSE connection ends)" : "");
        return 0;
      }
      if (fds[2].revents != 0) {
        read_signal(status_fd_.get());
        print_status();
      }
      if (fds[0].revents != 0) accept_pending();
    }
  }

 private:
  void print_status() {
    if (!fd_ && state_.empty()) {
      say("holding nothing");
      return;
    }
    say("holding {} bytes{}, saved by pid {}", state_.size(), fd_ ? " + fd" : " (no fd)",
        static_cast<int>(saved_by_));
  }

  void accept_pending() {
    while (true) {
      auto conn = listener_.try_accept();
      if (!conn.ok()) {
        say_line("accept failed: " + conn.error().message);
        return;
      }
      if (!*conn) return;
      handle(std::move(*conn));
    }
  }

  void handle(UniqueFd conn) {
    auto peer = ipc::peer_credentials(conn.get());
    const pid_t pid = peer.ok() ? peer->pid : -1;
    // The heuristic (see the top of this file and --help): data within the window = a save.
    Status readable =
        ipc::wait_fd(conn.get(), POLLIN,
                     ipc::Deadline::after(std::chrono::milliseconds(options_.window_ms), stop_fd_.get()),
                     "classifying the connection");
    if (readable.ok()) {
      save(conn.get(), pid);
    } else if (readable.error().code == ETIMEDOUT) {
      hand_over(conn.get(), pid);
    }
    // ECANCELED: a stop signal; the main loop picks it up.
  }

  [[nodiscard]] ipc::Deadline io_deadline() const {
    return ipc::Deadline::after(std::chrono::milliseconds(options_.timeout_ms), stop_fd_.get());
  }

  void save(int conn, pid_t pid) {
    auto received = ipc::read_handover(conn, io_deadline());
    if (!received.ok()) {
      say("save from pid {} failed, previous state kept: {}", static_cast<int>(pid),
          received.error().message.c_str());
      return;
    }
    if (!received->fd) {
      if (received->state.empty()) {
        say("connection from pid {} closed without sending anything (ignored)", static_cast<int>(pid));
      } else {
        say("save from pid {} rejected, previous state kept: {} bytes but no fd attached",
            static_cast<int>(pid), received->state.size());
      }
      return;
    }
    // The framing cannot tell a daemon that died mid-save from one that finished (both just
    // close), but a Ferry state's envelope can. States of other daemons (nydusd) are opaque.
    std::string kind;
    auto envelope = ipc::open_envelope(received->state, UINT32_MAX);
    if (envelope.ok()) {
      kind = "Ferry state v" + std::to_string(envelope->version);
    } else if (envelope.error().code == ipc::kEnvelopeForeign) {
      kind = "not a Ferry state envelope, held as opaque bytes";
    } else {
      say("save from pid {} rejected, previous state kept: {}", static_cast<int>(pid),
          envelope.error().message.c_str());
      return;
    }
    // New fd stored first; the previous one closes when `received` goes out of scope.
    std::swap(fd_, received->fd);
    std::swap(state_, received->state);
    saved_by_ = pid;
    say("stored state: {} bytes + fd (from pid {}; {})", state_.size(), static_cast<int>(pid), kind.c_str());
    if (!options_.state_file.empty()) {
      Status s = write_file_atomically(options_.state_file, state_);
      if (s.ok()) {
        say("wrote {} bytes to {}", state_.size(), options_.state_file.c_str());
      } else {
        say_line("could not write the state file (the state is still held in memory): " + s.error().message);
      }
    }
  }

  void hand_over(int conn, pid_t pid) {
    if (!fd_) {
      say("takeover request from pid {}: nothing is stored; closing the connection", static_cast<int>(pid));
      return;
    }
    Status s = ipc::write_handover(conn, fd_.get(), state_, io_deadline());
    if (!s.ok()) {
      say("handing state to pid {} failed (state still held): {}", static_cast<int>(pid),
          s.error().message.c_str());
      return;
    }
    say("handed state to pid {}: {} bytes + fd", static_cast<int>(pid), state_.size());
  }

  SupervisorOptions options_;
  ipc::UnixListener listener_;
  UniqueFd stop_fd_;    // signalfd: SIGINT, SIGTERM (also cancels a transfer in progress)
  UniqueFd status_fd_;  // signalfd: SIGUSR1
  UniqueFd fd_;         // the held /dev/fuse fd
  std::vector<std::byte> state_;
  pid_t saved_by_ = 0;
};

int run_supervisor(const SupervisorOptions& options) {
  ::signal(SIGPIPE, SIG_IGN);  // a vanished stdout reader must not kill the holder
  auto stop_fd = signal_fd({SIGINT, SIGTERM});
  auto status_fd = signal_fd({SIGUSR1});
  if (!stop_fd.ok() || !status_fd.ok()) {
    std::fprintf(stderr, "ferryctl supervisor: %s\n",
                 (!stop_fd.ok() ? stop_fd.error() : status_fd.error()).message.c_str());
    return 1;
  }
  auto listener = ipc::UnixListener::listen(options.socket);
  if (!listener.ok()) {
    std::fprintf(stderr, "ferryctl supervisor: %s\n", listener.error().message.c_str());
    return 1;
  }
  Holder holder(options, std::move(*listener), std::move(*stop_fd), std::move(*status_fd));
  return holder.run();  // the listener removes the socket file on the way out
}

}  // namespace

Command add_supervisor_command(CLI::App& parent) {
  auto options = std::make_shared<SupervisorOptions>();
  CLI::App* sub = parent.add_subcommand(
      "supervisor",
      "Hold one daemon's state and /dev/fuse fd in the foreground (a by-hand stand-in for the manager). "
      "Start ferryd with --supervisor PATH.");
  sub->add_option("--socket", options->socket,
                  "Unix socket to listen on (created 0600; a stale one is replaced)")
      ->type_name("PATH")
      ->required();
  sub->add_option("--state-file", options->state_file,
                  "After every save, also write the state bytes to FILE (atomically, mode 0600). Never read "
                  "back: the fd cannot be persisted")
      ->type_name("FILE");
  sub->add_option("--window", options->window_ms,
                  "Milliseconds to wait for a new connection to send data before treating it as a takeover")
      ->type_name("MS")
      ->check(CLI::Range(1, 60000))
      ->capture_default_str();
  sub->add_option("--timeout", options->timeout_ms, "Milliseconds allowed for one save or takeover transfer")
      ->type_name("MS")
      ->check(CLI::Range(1, 3600000))
      ->capture_default_str();
  sub->footer(
      "How connections are told apart: the daemon connects to the socket both to save its state and to take\n"
      "a saved state over. A saving daemon writes (fd + state) right after connecting; a daemon taking over\n"
      "connects and waits to read. So after accepting a connection ferryctl waits --window ms: if data\n"
      "arrives it is a SAVE: the state and fd replace the held ones, unless the save has no fd or is a\n"
      "Ferry state whose envelope check fails (cut short by a dying daemon, corrupt); states that are not\n"
      "Ferry envelopes (nydusd) are held as opaque bytes.\n"
      "If nothing arrives it is a TAKEOVER (the held state is sent with the held fd attached, then the\n"
      "connection is closed; with nothing held the connection is just closed). Only the latest state is "
      "held.\n"
      "\n"
      "By hand (A = the running daemon's --apisock, A2 = its successor's):\n"
      "  save:     curl --unix-socket A -X PUT http://localhost/api/v1/daemon/fuse/sendfd\n"
      "  takeover: start a new ferryd with --upgrade and the same --supervisor, then\n"
      "            curl --unix-socket A2 -X PUT http://localhost/api/v1/daemon/fuse/takeover\n"
      "\n"
      "Output: one line per event (\"stored state: N bytes + fd\", \"handed state to pid P\", ...).\n"
      "Signals: SIGUSR1 prints what is held; SIGINT/SIGTERM exit 0 and remove the socket. Exiting closes "
      "the\n"
      "held fd: if no daemon serves the FUSE connection at that moment, the kernel aborts it.");
  return Command{sub, [options] { return run_supervisor(*options); }};
}

}  // namespace ferry::ctl
