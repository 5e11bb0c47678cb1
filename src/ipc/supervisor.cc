#include "ipc/supervisor.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>
#include <system_error>
#include <thread>

namespace ferry::ipc {
namespace {

// Wakes the worker's waits (they poll the eventfd as the Deadline's cancel fd).
void fire(int eventfd) {
  uint64_t one = 1;
  while (::write(eventfd, &one, sizeof(one)) < 0 && errno == EINTR) {
  }
}

std::string pid_text(const PeerCredentials& peer) {
  return "pid " + std::to_string(peer.pid);
}

Result<UniqueFd> accept_daemon(UnixListener& listener, const Deadline& deadline) {
  auto conn = listener.accept(deadline);
  if (!conn.ok() && conn.error().code == ETIMEDOUT) {
    return Error{ETIMEDOUT, "no connection from the daemon within " +
                                std::to_string(deadline.budget.count()) + " ms (did the request reach it?)"};
  }
  return conn;
}

}  // namespace

Result<std::unique_ptr<Supervisor>> Supervisor::listen(const std::string& path, Options options) {
  FERRY_ASSIGN(UnixListener listener, UnixListener::listen(path));
  return std::make_unique<Supervisor>(Key{}, std::move(listener), std::move(options));
}

Supervisor::Supervisor(Key /*key*/, UnixListener listener, Options options)
    : listener_(std::move(listener)), options_(std::move(options)) {}

Supervisor::~Supervisor() = default;

void Supervisor::drop_queued_connections() {
  while (true) {
    auto conn = listener_.try_accept();
    if (!conn.ok()) {
      spdlog::warn("supervisor {}: {}", listener_.path(), conn.error().message);
      return;
    }
    if (!*conn) return;
    auto peer = peer_credentials(conn->get());
    spdlog::warn(
        "supervisor {}: dropping a connection from pid {} that was queued before this request "
        "(a late answer to an earlier request, or a probe)",
        listener_.path(), peer.ok() ? peer->pid : -1);
  }
}

Result<Supervisor::Exchange> Supervisor::exchange(
    const std::function<Status()>& trigger, std::chrono::milliseconds timeout, const std::string& what,
    const std::function<Result<Exchange>(const Deadline&)>& io) {
  UniqueFd cancel(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!cancel) return errno_error(what + ": eventfd");
  drop_queued_connections();
  const Deadline deadline = Deadline::after(timeout, cancel.get());

  std::optional<Result<Exchange>> outcome;
  Status triggered = ok_status();
  {
    std::jthread worker;
    try {
      worker = std::jthread([&] { outcome.emplace(io(deadline)); });
    } catch (const std::system_error& e) {
      return Error{EAGAIN, what + ": cannot start the I/O thread: " + e.what()};
    }
    // Declared after the worker so that it runs first on the way out: if the trigger fails
    // (or throws), the worker's waits are cancelled before the jthread joins it.
    struct Canceller {
      int fd;
      bool armed = true;
      explicit Canceller(int eventfd) : fd(eventfd) {}
      Canceller(const Canceller&) = delete;
      Canceller& operator=(const Canceller&) = delete;
      ~Canceller() {
        if (armed) fire(fd);
      }
    } canceller{cancel.get()};
    if (trigger) triggered = trigger();
    canceller.armed = !triggered.ok();
  }

  if (!triggered.ok()) return std::move(triggered).error().context(what + ": the trigger failed");
  if (!outcome.has_value()) return Error{EIO, what + ": the I/O thread produced no result"};
  if (!outcome->ok()) return std::move(*outcome).error().context(what);
  return std::move(*outcome).value();
}

Result<Supervisor::Exchange> Supervisor::receive(const std::function<Status()>& trigger,
                                                 std::chrono::milliseconds timeout) {
  std::lock_guard lock(exchange_mu_);
  const std::string what = "saving the daemon's state via " + listener_.path() + " (previous state kept)";
  std::optional<Handover> received;
  auto io = [&](const Deadline& deadline) -> Result<Exchange> {
    FERRY_ASSIGN(UniqueFd conn, accept_daemon(listener_, deadline));
    FERRY_ASSIGN(PeerCredentials peer, peer_credentials(conn.get()));
    auto handover = read_handover(conn.get(), deadline, options_.max_state_bytes);
    if (!handover.ok()) return std::move(handover).error().context("from " + pid_text(peer));
    if (!handover->fd) {
      if (handover->state.empty()) {
        return Error{ENODATA, pid_text(peer) + " connected but closed without sending anything"};
      }
      return Error{EPROTO, pid_text(peer) + " sent " + std::to_string(handover->state.size()) +
                               " bytes but no fd; a save must carry the /dev/fuse fd"};
    }
    Exchange done{peer, handover->state.size()};
    received = std::move(handover).value();
    return done;
  };
  FERRY_ASSIGN(Exchange done, exchange(trigger, timeout, what, io));
  if (options_.validate) {
    Status valid = options_.validate(received->state);
    if (!valid.ok()) {
      return std::move(valid).error().context(what + ": the state from " + pid_text(done.peer) +
                                              " was rejected");
    }
  }
  // Only now, with the trigger and the transfer both good, does the new state replace the old.
  replace(std::make_shared<const Stored>(Stored{std::move(received->fd), std::move(received->state)}));
  return done;
}

Result<Supervisor::Exchange> Supervisor::send(const std::function<Status()>& trigger,
                                              std::chrono::milliseconds timeout) {
  std::lock_guard lock(exchange_mu_);
  const std::string what = "handing the stored state over via " + listener_.path();
  std::shared_ptr<const Stored> stored = snapshot();
  if (!stored) return Error{ENOENT, what + ": nothing is stored (no save has succeeded yet)"};
  if (!stored->fd) {
    return Error{ENOTCONN, what +
                               ": the stored state has no fd (loaded from disk?); a takeover needs a fresh "
                               "save from a running daemon"};
  }
  auto io = [&](const Deadline& deadline) -> Result<Exchange> {
    FERRY_ASSIGN(UniqueFd conn, accept_daemon(listener_, deadline));
    FERRY_ASSIGN(PeerCredentials peer, peer_credentials(conn.get()));
    Status s = write_handover(conn.get(), stored->fd.get(), stored->bytes, deadline);
    if (!s.ok()) return std::move(s).error().context("to " + pid_text(peer));
    return Exchange{peer, stored->bytes.size()};
  };
  return exchange(trigger, timeout, what, io);
}

std::shared_ptr<const Supervisor::Stored> Supervisor::snapshot() const {
  std::lock_guard lock(state_mu_);
  return stored_;
}

void Supervisor::replace(std::shared_ptr<const Stored> next) {
  {
    std::lock_guard lock(state_mu_);
    stored_.swap(next);
  }
  // `next` now holds the previous state: its fd closes here, after the new one is stored and
  // outside the lock (or later, when an in-flight send() drops its snapshot).
}

bool Supervisor::has_state() const {
  return snapshot() != nullptr;
}

bool Supervisor::has_fd() const {
  auto s = snapshot();
  return s && s->fd;
}

size_t Supervisor::state_size() const {
  auto s = snapshot();
  return s ? s->bytes.size() : 0;
}

int Supervisor::fd() const {
  auto s = snapshot();
  return s ? s->fd.get() : -1;
}

Result<UniqueFd> Supervisor::dup_fd() const {
  auto s = snapshot();
  if (!s || !s->fd) return Error{ENOTCONN, "the supervisor at " + listener_.path() + " holds no fd"};
  UniqueFd copy(::fcntl(s->fd.get(), F_DUPFD_CLOEXEC, 0));
  if (!copy) return errno_error("duplicating the stored fd");
  return copy;
}

std::optional<std::vector<std::byte>> Supervisor::state() const {
  auto s = snapshot();
  if (!s) return std::nullopt;
  return s->bytes;
}

void Supervisor::store(UniqueFd fd, std::vector<std::byte> state) {
  replace(std::make_shared<const Stored>(Stored{std::move(fd), std::move(state)}));
}

void Supervisor::clear() {
  replace(nullptr);
}

}  // namespace ferry::ipc
