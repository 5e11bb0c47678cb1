#include "manager/unit/fake_env.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <csignal>
#include <fstream>

#include "ipc/state_envelope.h"
#include "ipc/supervisor_wire.h"

namespace ferry::manager::fake {
namespace {

std::string arg_after(const std::vector<std::string>& argv, const std::string& flag) {
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == flag) return argv[i + 1];
  }
  return "";
}

bool has_arg(const std::vector<std::string>& argv, const std::string& flag) {
  for (const auto& a : argv) {
    if (a == flag) return true;
  }
  return false;
}

UniqueFd new_eventfd() {
  return UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
}

void append_line(const std::string& path, const std::string& line) {
  std::ofstream(path, std::ios::app) << line << "\n";
}

class FakeProcess final : public Process {
 public:
  FakeProcess(FakeEnv& env, std::shared_ptr<FakeDaemon> d, bool child) : env_(env), d_(std::move(d)), child_(child) {}
  [[nodiscard]] pid_t pid() const override { return d_->pid; }
  [[nodiscard]] int pidfd() const override { return d_->exited.get(); }
  [[nodiscard]] uint64_t start_time() const override { return static_cast<uint64_t>(d_->pid) * 10; }
  [[nodiscard]] bool is_child() const override { return child_; }
  [[nodiscard]] bool is_alive() const override { return env_.alive(d_->pid); }
  Status signal(int sig) const override {
    if (!env_.alive(d_->pid)) return Error{ESRCH, "signal to " + std::to_string(d_->pid) + ": it has exited"};
    if (sig == SIGKILL) {
      env_.kill(d_->pid);
    } else if (sig == SIGTERM) {
      env_.end(d_, "exited with status 0", 0);  // ferryd unmounts and exits 0
    }
    return ok_status();
  }
  Result<std::string> wait_exit(std::chrono::milliseconds timeout) override {
    pollfd p{d_->exited.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) {
      return Error{ETIMEDOUT, "process " + std::to_string(d_->pid) + " still running"};
    }
    return reap();
  }
  Status kill_and_reap() override {
    if (env_.alive(d_->pid)) env_.kill(d_->pid);
    return ok_status();
  }
  std::string reap() override {
    if (env_.alive(d_->pid)) return "still running";
    return child_ ? d_->how : "exited";
  }
  [[nodiscard]] std::optional<int> exit_code() const override {
    return child_ && !env_.alive(d_->pid) ? d_->exit_code : std::nullopt;
  }

 private:
  FakeEnv& env_;
  std::shared_ptr<FakeDaemon> d_;
  bool child_;
};

class FakeApi final : public DaemonApi {
 public:
  FakeApi(FakeEnv& env, std::string socket, std::string label)
      : env_(env), socket_(std::move(socket)), label_(std::move(label)) {}

  Result<DaemonInfo> info(ms /*timeout*/) const override {
    FERRY_ASSIGN(auto d, daemon("info"));
    return DaemonInfo{d->id, env_.state(d->pid), env_.version_of(d->binary), "fake", d->pid};
  }
  Status start(ms /*timeout*/) const override {
    FERRY_ASSIGN(auto d, daemon("start"));
    if (env_.state(d->pid) != "READY") return refused("start", "start needs READY, not " + env_.state(d->pid));
    env_.note("start " + std::to_string(d->pid));
    set_state(d, "RUNNING", false);
    return ok_status();
  }
  Status start_when_predecessor_exits(ms /*timeout*/) const override {
    FERRY_ASSIGN(auto d, daemon("start"));
    if (env_.state(d->pid) != "READY") return refused("start", "start needs READY, not " + env_.state(d->pid));
    env_.note("arm " + std::to_string(d->pid));
    set_state(d, "READY", true);
    return ok_status();
  }
  Status exit(ms /*timeout*/) const override {
    FERRY_ASSIGN(auto d, daemon("exit"));
    env_.note("exit " + std::to_string(d->pid));
    env_.end(d, "exited with status 0", 0);
    if (env_.on_exit) env_.on_exit(d->pid);
    return ok_status();
  }
  Status sendfd(ms timeout) const override {
    FERRY_ASSIGN(auto d, daemon("sendfd"));
    env_.note("sendfd " + std::to_string(d->pid));
    const std::string text = "fake state of " + d->id;
    auto sealed = ipc::seal(std::as_bytes(std::span(text.data(), text.size())), 1);
    return ipc::send_state(d->supervisor, d->fuse.get(), sealed, timeout);
  }
  Status takeover(ms timeout) const override {
    FERRY_ASSIGN(auto d, daemon("takeover"));
    env_.note("takeover " + std::to_string(d->pid));
    if (d->plan.refuse_takeover) return refused("takeover", "rejected state: planned by the test");
    if (env_.state(d->pid) != "INIT") return refused("takeover", "takeover needs INIT, not " + env_.state(d->pid));
    FERRY_ASSIGN(ipc::Handover h, ipc::receive_state(d->supervisor, timeout));
    if (!h.fd.valid()) return refused("takeover", "the supervisor sent no file descriptor");
    FERRY_TRY(ipc::open_envelope(h.state, 1));
    d->fuse = std::move(h.fd);
    set_state(d, "READY", false);
    return ok_status();
  }
  Status attach(const std::string& /*sub*/, const std::string& /*bootstrap*/, const std::string& /*config*/,
                ms /*timeout*/) const override {
    return refused("attach", "the fake daemon serves no images");
  }
  Status detach(const std::string& /*sub*/, ms /*timeout*/) const override { return ok_status(); }

 private:
  Result<std::shared_ptr<FakeDaemon>> daemon(const std::string& what) const {
    auto d = env_.serving_at(socket_);
    if (!d) {
      return Error{ECONNREFUSED, "ferryd " + label_ + ": " + what + ": cannot connect to '" + socket_ + "'"};
    }
    return d;
  }
  Error refused(const std::string& what, const std::string& why) const {
    return Error{EINVAL, "ferryd " + label_ + ": " + what + ": 400 " + why};
  }
  void set_state(const std::shared_ptr<FakeDaemon>& d, const std::string& state, bool armed) const {
    env_.set_state(d->pid, state, armed);
  }

  FakeEnv& env_;
  std::string socket_;
  std::string label_;
};

}  // namespace

FakeEnv::FakeEnv() = default;

Result<DaemonProcess> FakeEnv::spawn(const std::vector<std::string>& argv, const std::string& log_file,
                                     bool /*idle_priority*/) {
  auto d = std::make_shared<FakeDaemon>();
  d->binary = argv.at(0);
  d->log = log_file;
  d->exited = new_eventfd();
  d->fuse = new_eventfd();
  if (argv.size() == 2 && argv[1] == "--version") {
    append_line(log_file, "ferryd " + version_of(d->binary) + " (commit fake)");
    note("version " + d->binary);
    std::lock_guard lk(mu_);
    d->pid = next_pid_++;
    d->alive = false;
    d->how = "exited with status 0";
    d->exit_code = 0;
    const uint64_t one = 1;
    (void)!::write(d->exited.get(), &one, sizeof one);
    daemons_[d->pid] = d;
    return DaemonProcess(std::make_unique<FakeProcess>(*this, d, true));
  }
  d->id = arg_after(argv, "--id");
  d->api = arg_after(argv, "--apisock");
  d->supervisor = arg_after(argv, "--supervisor");
  d->upgrade = has_arg(argv, "--upgrade");
  d->state = d->upgrade ? "INIT" : "RUNNING";
  {
    std::lock_guard lk(mu_);
    if (!plans_.empty()) {
      d->plan = plans_.front();
      plans_.pop_front();
    }
    d->pid = next_pid_++;
    daemons_[d->pid] = d;
    order_.push_back(d->pid);
    log_.push_back("spawn " + std::to_string(d->pid) + " " + d->binary + (d->upgrade ? " upgrade" : ""));
  }
  if (d->plan.exit_at_start) {
    if (!d->plan.stderr_line.empty()) append_line(log_file, d->plan.stderr_line);
    end(d, "exited with status " + std::to_string(*d->plan.exit_at_start), d->plan.exit_at_start);
  }
  return DaemonProcess(std::make_unique<FakeProcess>(*this, d, true));
}

Result<DaemonProcess> FakeEnv::adopt(pid_t pid, uint64_t start_time) {
  auto d = find(pid);
  if (!d || !alive(pid) || static_cast<uint64_t>(pid) * 10 != start_time) {
    return Error{ESRCH, "adopting process " + std::to_string(pid) + ": it is gone"};
  }
  return DaemonProcess(std::make_unique<FakeProcess>(*this, d, false));
}

std::unique_ptr<DaemonApi> FakeEnv::api(const std::string& socket, const std::string& label) {
  return std::make_unique<FakeApi>(*this, socket, label.empty() ? socket : label);
}

Env::Clock::time_point FakeEnv::now() {
  std::lock_guard lk(mu_);
  return Clock::time_point() + std::chrono::hours(1) + elapsed_;
}

void FakeEnv::sleep_for(std::chrono::microseconds pause) {
  std::lock_guard lk(mu_);
  elapsed_ += pause;
}

bool FakeEnv::wait_unless(std::unique_lock<std::mutex>& /*lock*/, std::condition_variable& /*cv*/,
                          std::chrono::milliseconds delay, const std::function<bool()>& stop) {
  {
    std::lock_guard lk(mu_);
    backoffs_.push_back(delay);
    elapsed_ += delay;
  }
  return stop();
}

void FakeEnv::plan(Plan p) {
  std::lock_guard lk(mu_);
  plans_.push_back(std::move(p));
}

void FakeEnv::set_version(const std::string& binary, const std::string& version) {
  std::lock_guard lk(mu_);
  versions_[binary] = version;
}

std::string FakeEnv::version_of(const std::string& binary) const {
  std::lock_guard lk(mu_);
  auto it = versions_.find(binary);
  return it == versions_.end() ? "1.0" : it->second;
}

void FakeEnv::kill(pid_t pid) {
  if (auto d = find(pid)) {
    note("killed " + std::to_string(pid));
    end(d, "killed by signal 9", std::nullopt);
  }
}

void FakeEnv::end(const std::shared_ptr<FakeDaemon>& d, const std::string& how, std::optional<int> code) {
  std::lock_guard lk(mu_);
  if (!d->alive) return;
  const bool was_serving = d->state == "RUNNING";
  d->alive = false;
  d->how = how;
  d->exit_code = code;
  // A standby armed on this daemon's exit starts serving (ferryd's PredecessorWatch).
  if (was_serving) {
    for (auto& [pid, other] : daemons_) {
      if (other->alive && other->armed && other->id == d->id) {
        other->armed = false;
        other->state = "RUNNING";
      }
    }
  }
  const uint64_t one = 1;
  (void)!::write(d->exited.get(), &one, sizeof one);
}

std::shared_ptr<FakeDaemon> FakeEnv::find(pid_t pid) const {
  std::lock_guard lk(mu_);
  auto it = daemons_.find(pid);
  return it == daemons_.end() ? nullptr : it->second;
}

std::shared_ptr<FakeDaemon> FakeEnv::serving_at(const std::string& api) const {
  std::lock_guard lk(mu_);
  for (const auto& [pid, d] : daemons_) {
    if (d->alive && d->api == api && !d->plan.exit_at_start) return d;
  }
  return nullptr;
}

void FakeEnv::note(std::string line) {
  std::lock_guard lk(mu_);
  log_.push_back(std::move(line));
}

std::vector<std::chrono::milliseconds> FakeEnv::backoffs() const {
  std::lock_guard lk(mu_);
  return backoffs_;
}

std::vector<std::string> FakeEnv::log() const {
  std::lock_guard lk(mu_);
  return log_;
}

std::vector<pid_t> FakeEnv::spawned() const {
  std::lock_guard lk(mu_);
  return order_;
}

bool FakeEnv::alive(pid_t pid) const {
  std::lock_guard lk(mu_);
  auto it = daemons_.find(pid);
  return it != daemons_.end() && it->second->alive;
}

std::string FakeEnv::state(pid_t pid) const {
  std::lock_guard lk(mu_);
  auto it = daemons_.find(pid);
  return it == daemons_.end() ? "" : it->second->state;
}

void FakeEnv::set_state(pid_t pid, const std::string& state, bool armed) {
  std::lock_guard lk(mu_);
  auto it = daemons_.find(pid);
  if (it == daemons_.end()) return;
  it->second->state = state;
  it->second->armed = armed;
}

std::string FakeEnv::binary_of(pid_t pid) const {
  std::lock_guard lk(mu_);
  auto it = daemons_.find(pid);
  return it == daemons_.end() ? "" : it->second->binary;
}

}  // namespace ferry::manager::fake
