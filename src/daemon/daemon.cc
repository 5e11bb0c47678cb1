#include "daemon/daemon.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <thread>
#include <utility>

#include "common/build_info.h"
#include "common/proc_files.h"
#include "daemon/daemon_config.h"
#include "daemon/scheduling.h"
#include "daemon/session_writer.h"
#include "imagefs/deferred_image.h"
#include "imagefs/image_loader.h"
#include "ipc/supervisor_wire.h"

namespace ferry::daemon {
namespace {

uint64_t unix_seconds() {
  return static_cast<uint64_t>(::time(nullptr));
}

uint64_t unix_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

std::string rfc3339(uint64_t secs) {
  std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// "/SUB" -> "SUB"; a single path component, no "." or "..".
Result<std::string> sub_name(const std::string& sub) {
  if (sub.size() < 2 || sub[0] != '/') {
    return Error{EINVAL,
                 "mountpoint '" + sub + "' must be an absolute path inside the daemon's mount, like /image1"};
  }
  std::string name = sub.substr(1);
  if (!name.empty() && name.back() == '/') name.pop_back();
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == ".." ||
      name.size() > 255) {
    return Error{EINVAL,
                 "mountpoint '" + sub + "' must name one directory directly below the root (e.g. /image1)"};
  }
  return name;
}

// Parses the backend config and opens the image. A missing file is "not found"; anything else
// about it is the caller's bad input.
Result<std::shared_ptr<const erofs::ErofsImage>> open_erofs(const std::string& source,
                                                            const std::string& config_json) {
  imagefs::BackendConfig backend;
  if (!config_json.empty()) {
    FERRY_ASSIGN(backend, parse_backend_config(config_json));
  }
  auto image = imagefs::open_image(source, backend);
  if (!image.ok()) {
    Error e = std::move(image).error();
    if (e.code != ENOENT) e.code = EINVAL;
    return e;
  }
  return image;
}

}  // namespace

Daemon::Daemon(DaemonOptions options, const EventWaiter& events, const FilesystemDecorator& decorate)
    : options_(std::move(options)),
      events_(events),
      metrics_(options_.threads),
      fs_(imagefs::ImageFsOptions{}, options_.threads),
      decorated_(decorate ? decorate(fs_) : nullptr),
      server_(decorated_ ? *decorated_ : static_cast<fuse::Filesystem&>(fs_), fuse::ServerOptions{}, &metrics_),
      workers_(std::make_unique<FuseWorkers>(server_,
                                             [this] {
                                               connection_lost_.store(true);
                                               events_.notify();
                                             })),
      machine_([this](DaemonState from, DaemonEvent event) { return on_transition(from, event); }) {}

void Daemon::prepare_workers() {
  std::lock_guard lock(ops_mu_);
  if (machine_.state() != DaemonState::kRunning) workers_->prepare(options_.threads);
}

Daemon::~Daemon() {
  // Joins the watch thread, which may be waiting for ops_mu_: not held here.
  predecessor_watch_.reset();
  if (workers_) workers_->stop();
}

// ---- life cycle ----------------------------------------------------------------------------

namespace {
Status fired(Result<DaemonState> r) {
  if (!r.ok()) return std::move(r).error();
  return {};
}
}  // namespace

Status Daemon::mount() {
  std::lock_guard lock(ops_mu_);
  return fired(machine_.fire(DaemonEvent::kMount));
}

Status Daemon::takeover() {
  std::lock_guard lock(ops_mu_);
  return fired(machine_.fire(DaemonEvent::kTakeover));
}

Status Daemon::start() {
  std::lock_guard lock(ops_mu_);
  disarm_locked();
  return fired(machine_.fire(DaemonEvent::kStart));
}

Status Daemon::start_when_predecessor_exits() {
  std::lock_guard lock(ops_mu_);
  const DaemonState st = machine_.state();
  if (st != DaemonState::kReady || !resend_on_start_) {
    return Error{EINVAL, "start on the predecessor's exit needs a taken-over state in READY (now " +
                             std::string(to_string(st)) +
                             (st == DaemonState::kReady ? ", mounted here" : "") + ")"};
  }
  if (armed_) return Error{EEXIST, "already waiting for pid " + std::to_string(saver_pid_) + " to exit"};
  if (predecessor_watch_) return Error{EEXIST, "a start on the predecessor's exit was asked for already"};
  // Everything ready before standing by: the images open now, not in the failover. One that
  // cannot be opened (a detached image whose file was removed, say) is logged by its opener and
  // fails its own requests, as it would after any takeover: no reason not to stand by.
  for (const auto& image : fs_.images(true)) {
    if (const auto* deferred = dynamic_cast<const imagefs::DeferredImage*>(image->image.get())) {
      (void)deferred->prepare();
    }
  }
  FERRY_ASSIGN(predecessor_watch_,
               PredecessorWatch::start(saver_pid_, saver_start_time_, [this] { on_predecessor_exit(); }));
  armed_ = true;
  spdlog::info("standing by: serving as soon as pid {} exits", saver_pid_);
  return {};
}

void Daemon::on_predecessor_exit() {
  std::lock_guard lock(ops_mu_);
  if (!armed_) return;
  armed_ = false;
  saver_exited_ = true;
  spdlog::info("pid {} exited: taking over the connection", saver_pid_);
  if (auto st = fired(machine_.fire(DaemonEvent::kStart)); !st.ok()) {
    spdlog::error("starting after pid {} exited: {}", saver_pid_, st.error().message);
  }
}

void Daemon::disarm_locked() {
  if (!armed_) return;
  armed_ = false;
  predecessor_watch_->cancel();
  spdlog::info("no longer waiting for pid {} to exit", saver_pid_);
}

Status Daemon::stop() {
  std::lock_guard lock(ops_mu_);
  return fired(machine_.fire(DaemonEvent::kStop));
}

Status Daemon::exit_keep_mount() {
  std::lock_guard lock(ops_mu_);
  disarm_locked();
  if (machine_.state() == DaemonState::kRunning) FERRY_TRY(fired(machine_.fire(DaemonEvent::kStop)));
  return fired(machine_.fire(DaemonEvent::kExit));
}

Status Daemon::shutdown() {
  std::lock_guard lock(ops_mu_);
  if (armed_) {
    // A standby's connection is its predecessor's mount: leave without unmounting it.
    disarm_locked();
    return fired(machine_.fire(DaemonEvent::kExit));
  }
  if (machine_.state() == DaemonState::kRunning) FERRY_TRY(fired(machine_.fire(DaemonEvent::kStop)));
  if (machine_.state() == DaemonState::kStopped) return {};
  return fired(machine_.fire(DaemonEvent::kStop));
}

Status Daemon::on_transition(DaemonState from, DaemonEvent event) {
  switch (event) {
    case DaemonEvent::kMount:
      return do_mount();
    case DaemonEvent::kTakeover:
      return do_takeover();
    case DaemonEvent::kStart:
      return do_start();
    case DaemonEvent::kStop:
      if (from == DaemonState::kRunning) {
        do_stop_workers();
        return {};
      }
      if (from == DaemonState::kReady) return do_unmount();
      return {};
    case DaemonEvent::kExit:
      spdlog::info("exiting without unmounting '{}': the mount stays for a successor", options_.mountpoint);
      session_.reset();  // our fd only; the supervisor's and the successor's keep the connection
      exit_requested_.store(true);
      events_.notify();
      return {};
  }
  return Error{EINVAL, "unknown event"};
}

Result<imagefs::AttachedImage> Daemon::open_attached(const std::string& name, const std::string& source,
                                                     const std::string& config_json) {
  FERRY_ASSIGN(auto image, open_erofs(source, config_json));
  imagefs::AttachedImage a;
  a.name = name;
  a.source = source;
  a.config = config_json;
  a.mounted_time = unix_seconds();
  a.image = std::move(image);
  return a;
}

Status Daemon::do_mount() {
  std::optional<imagefs::AttachedImage> root;
  if (!options_.bootstrap.empty()) {
    FERRY_ASSIGN(auto image, open_attached("", options_.bootstrap, options_.config_json));
    image.slot = fs_.next_slot();
    root.emplace(std::move(image));
  }
  fuse::MountOptions mo;
  mo.mountpoint = options_.mountpoint;
  FERRY_ASSIGN(auto session, fuse::FuseSession::mount(mo));
  if (root) {
    uint32_t slot = root->slot;
    if (auto st = fs_.set_root(std::move(*root)); !st.ok()) {
      (void)session.unmount();
      return st;
    }
    metrics_.add_image(slot);
    metrics_.set_root_slot(slot);
  }
  session_ = std::move(session);
  spdlog::info("mounted at '{}'{}", options_.mountpoint,
               options_.bootstrap.empty() ? " (shared daemon)" : " serving '" + options_.bootstrap + "'");
  return {};
}

Status Daemon::do_takeover() {
  if (options_.supervisor.empty()) return Error{EINVAL, "takeover needs --supervisor"};
  const auto t0 = std::chrono::steady_clock::now();
  auto handover = ipc::receive_state(options_.supervisor, options_.supervisor_timeout);
  const auto t_received = std::chrono::steady_clock::now();
  if (!handover.ok()) return Error{EIO, "receiving state from supervisor: " + handover.error().message};
  if (!handover->fd.valid()) return Error{EINVAL, "the supervisor sent no file descriptor"};
  auto state = decode_state(handover->state);
  if (!state.ok()) return Error{EINVAL, "rejected state: " + state.error().message};
  if (!options_.id.empty() && !state->daemon_id.empty() && state->daemon_id != options_.id) {
    return Error{EINVAL, "rejected state: it belongs to daemon '" + state->daemon_id + "', this is '" +
                             options_.id + "'"};
  }
  if (!state->mountpoint.empty() && state->mountpoint != options_.mountpoint) {
    return Error{EINVAL, "rejected state: it serves '" + state->mountpoint + "', this daemon '" +
                             options_.mountpoint + "'"};
  }
  auto session = fuse::FuseSession::adopt(std::move(handover->fd), options_.mountpoint);
  if (!session.ok()) return Error{EINVAL, "rejected fd: " + session.error().message};

  // The images are opened on first use, not here: opening a hundred would lengthen the
  // blackout by milliseconds, and one that cannot be opened any more must fail only its own
  // requests (a standby opens them all before it stands by; see start_when_predecessor_exits).
  std::vector<std::pair<imagefs::AttachedImage, bool>> images;
  images.reserve(state->images.size());
  for (const auto& saved : state->images) {
    imagefs::AttachedImage image;
    image.name = saved.name;
    image.source = saved.source;
    image.config = saved.config;
    image.slot = saved.slot;
    image.mounted_time = saved.mounted_time;
    image.image = std::make_shared<const imagefs::DeferredImage>(
        [source = saved.source, config = saved.config]() -> Result<std::shared_ptr<const erofs::ErofsImage>> {
          auto opened = open_erofs(source, config);
          if (!opened.ok()) {
            spdlog::error("reopening image '{}' after the takeover: {}; its requests fail with EIO", source,
                          opened.error().message);
            return Error{EIO, "image '" + source + "' cannot be reopened: " + opened.error().message};
          }
          return opened;
        });
    images.emplace_back(std::move(image), saved.detached);
  }
  for (auto& [image, detached] : images) {
    uint32_t slot = image.slot;
    Status st;
    if (detached) {
      st = fs_.add_draining(std::move(image));
    } else if (image.name.empty()) {
      st = fs_.set_root(std::move(image));
      metrics_.set_root_slot(slot);
    } else {
      st = fs_.attach(std::move(image));
    }
    if (!st.ok()) return std::move(st).error().context("restoring image slot " + std::to_string(slot));
    metrics_.add_image(slot);
  }
  // The kernel's references to restored images predate us: never let them drain to zero.
  for (const auto& image : fs_.images(true)) image->lookups.store(INT64_MAX / 2);
  fs_.reserve_slots_below(state->next_slot);
  server_.restore(state->fuse);
  session_ = std::move(*session);
  options_.failover_policy =
      options_.failover_policy.empty() ? state->failover_policy : options_.failover_policy;
  saver_pid_ = state->pid;
  saver_start_time_ = state->pid_start_time;
  resend_on_start_ = true;
  const auto ms = [](auto d) { return std::chrono::duration<double, std::milli>(d).count(); };
  const auto t_done = std::chrono::steady_clock::now();
  spdlog::info(
      "took over '{}' from pid {} ({} images, opened on first use; protocol 7.{}) in {:.3f} ms ({:.3f} ms "
      "receiving the state)",
      options_.mountpoint, state->pid, state->images.size(), state->fuse.minor, ms(t_done - t0),
      ms(t_received - t0));
  return {};
}

Status Daemon::do_start() {
  if (!session_) return Error{EAGAIN, "no FUSE connection"};
  restore_serving_priority();
  const auto t0 = std::chrono::steady_clock::now();
  workers_->start(*session_, options_.threads);
  // A fresh mount's FUSE_INIT is answered by the workers just started. Waiting for it here
  // means RUNNING promises a connection whose state can be saved (sendfd answers 503 before).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!server_.init_params() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  if (!server_.init_params()) spdlog::warn("the kernel has not sent FUSE_INIT within 5 s");
  if (resend_on_start_) {
    resend_on_start_ = false;
    auto params = server_.init_params();
    // A watched saver may be a zombie not yet reaped by its parent: gone, though /proc has it.
    bool saver_gone =
        saver_exited_ || saver_pid_ <= 0 || live_process_start_time(saver_pid_) != saver_start_time_;
    if (options_.failover_policy != "resend") {
      spdlog::info("failover policy '{}': requests the previous daemon held are not resent",
                   options_.failover_policy);
    } else if (!saver_gone) {
      spdlog::info("previous daemon (pid {}) is alive: planned hand-over, no resend", saver_pid_);
    } else if (!params || !params->kernel_can_resend()) {
      spdlog::warn(
          "the kernel cannot resend requests (no FUSE_HAS_RESEND): requests the dead daemon held wait");
    } else if (auto st = resend(); !st.ok()) {
      spdlog::error("{}", st.error().message);
    } else {
      spdlog::info("asked the kernel to resend the requests pid {} had not answered", saver_pid_);
    }
  }
  for (const auto& name : std::exchange(pending_invalidations_, {})) notify_child_changed(name);
  spdlog::info("serving with {} threads (start took {:.3f} ms)", options_.threads,
               std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  return {};
}

void Daemon::do_stop_workers() {
  // Stopped serving means holding no request. Joining the threads is left to the next
  // start (FuseWorkers::prepare) or the destructor: a daemon leaving for its successor ends
  // right after, and a thread's exit costs more on a busy host than ending the process with it.
  workers_->quiesce();
}

Status Daemon::do_unmount() {
  if (session_) FERRY_TRY(session_->unmount());
  session_.reset();
  return {};
}

// ---- state hand-over -----------------------------------------------------------------------

SavedState Daemon::snapshot() const {
  SavedState s;
  s.daemon_id = options_.id;
  s.mountpoint = options_.mountpoint;
  s.fuse = *server_.init_params();
  for (const auto& image : fs_.images(true)) {
    s.images.push_back({image->slot, image->name, image->source, image->config, image->mounted_time,
                        image->draining.load()});
  }
  s.next_slot = fs_.next_slot();
  s.failover_policy = options_.failover_policy;
  s.pid = ::getpid();
  s.pid_start_time = live_process_start_time(s.pid);
  s.version = build_info::package_version();
  s.saved_at_unix_ms = unix_ms();
  return s;
}

Status Daemon::send_fd() {
  std::lock_guard lock(ops_mu_);
  DaemonState st = machine_.state();
  if (st != DaemonState::kReady && st != DaemonState::kRunning) {
    return Error{EAGAIN,
                 "state can only be saved in READY or RUNNING (now " + std::string(to_string(st)) + ")"};
  }
  if (!server_.init_params()) {
    return Error{EAGAIN, "the kernel has not negotiated FUSE_INIT yet: nothing to save"};
  }
  if (options_.supervisor.empty()) return Error{EINVAL, "this daemon was started without --supervisor"};
  if (!session_) return Error{EAGAIN, "no FUSE connection"};
  std::vector<std::byte> bytes = encode_state(snapshot());
  auto st2 = ipc::send_state(options_.supervisor, session_->fd(), bytes, options_.supervisor_timeout);
  if (!st2.ok()) return Error{EIO, "sending state to supervisor: " + st2.error().message};
  spdlog::info("saved {} bytes of state and the FUSE fd to '{}'", bytes.size(), options_.supervisor);
  return {};
}

// ---- images --------------------------------------------------------------------------------

Status Daemon::attach(const std::string& sub, const std::string& source, const std::string& config_json) {
  FERRY_ASSIGN(std::string name, sub_name(sub));
  std::lock_guard lock(ops_mu_);
  DaemonState st = machine_.state();
  if (st != DaemonState::kReady && st != DaemonState::kRunning) {
    return Error{EAGAIN,
                 "images can be attached in READY or RUNNING (now " + std::string(to_string(st)) + ")"};
  }
  if (!options_.bootstrap.empty())
    return Error{EINVAL, "this daemon serves one image (--bootstrap) at its root"};
  for (const auto& image : fs_.images()) {
    if (image->name == name) return Error{EEXIST, "'" + sub + "' is already mounted"};
  }
  FERRY_ASSIGN(auto image, open_attached(name, source, config_json));
  image.slot = fs_.next_slot();
  uint32_t slot = image.slot;
  FERRY_TRY(fs_.attach(std::move(image)));
  metrics_.add_image(slot);
  spdlog::info("attached '{}' at '{}' (slot {})", source, sub, slot);
  invalidate_child(name);
  return {};
}

Status Daemon::replace(const std::string& sub, const std::string& source, const std::string& config_json) {
  FERRY_ASSIGN(std::string name, sub_name(sub));
  std::lock_guard lock(ops_mu_);
  FERRY_ASSIGN(auto image, open_attached(name, source, config_json));
  image.slot = fs_.next_slot();
  uint32_t slot = image.slot;
  FERRY_TRY(fs_.replace(std::move(image)));
  metrics_.add_image(slot);
  spdlog::info("replaced the image at '{}' with '{}' (slot {})", sub, source, slot);
  invalidate_child(name);
  return {};
}

Status Daemon::detach(const std::string& sub) {
  FERRY_ASSIGN(std::string name, sub_name(sub));
  std::lock_guard lock(ops_mu_);
  FERRY_ASSIGN(auto image, fs_.detach(name));
  spdlog::info("detached '{}' from '{}'", image->source, sub);
  invalidate_child(name);
  return {};
}

Status Daemon::resend() const {
  SessionWriter writer(*session_);
  return fuse::FuseServer::notify_resend(writer);
}

void Daemon::invalidate_child(const std::string& name) {
  // The kernel's INVAL_ENTRY takes the pseudo root's lock, so it waits for the lookups in the
  // root it has queued. Only running workers answer those: before start() (a takeover in
  // READY), the notification waits for start(), which sends it.
  if (machine_.state() != DaemonState::kRunning || !session_) {
    pending_invalidations_.push_back(name);
    return;
  }
  notify_child_changed(name);
}

void Daemon::notify_child_changed(const std::string& name) {
  SessionWriter writer(*session_);
  if (auto st = server_.notify_inval_entry(writer, imagefs::kRootNodeId, name); !st.ok()) {
    spdlog::warn("telling the kernel that '/{}' changed: {}", name, st.error().message);
  }
  // The root's attributes (link count, mtime) and its cached listing.
  if (auto st = server_.notify_inval_inode(writer, imagefs::kRootNodeId, 0, 0); !st.ok()) {
    spdlog::warn("telling the kernel that the root changed: {}", st.error().message);
  }
}

// ---- observability -------------------------------------------------------------------------

nlohmann::json Daemon::info() const {
  nlohmann::json backends = nlohmann::json::object();
  for (const auto& image : fs_.images()) {
    std::string mp = "/" + image->name;
    backends[mp] = {{"backend_type", "rafs"},
                    {"mountpoint", mp},
                    {"mounted_time", rfc3339(image->mounted_time)},
                    {"source", image->source}};
  }
  return {{"id", options_.id},
          {"version",
           {{"package_ver", build_info::package_version()},
            {"git_commit", build_info::kGitCommit},
            {"build_time", build_info::kBuildTime},
            {"profile", build_info::kProfile}}},
          {"supervisor", options_.supervisor},
          {"state", std::string(to_string(machine_.state()))},
          {"pid", ::getpid()},
          {"standing_by_for_pid", armed_.load() ? saver_pid_ : 0},
          {"mountpoint", options_.mountpoint},
          {"backend_collection", backends}};
}

Result<nlohmann::json> Daemon::metrics(const std::string& sub) const {
  if (sub.empty()) {
    nlohmann::json totals = metrics_.totals();
    if (auto remote = remote_blob_metrics(); !remote.empty()) totals["remote_blobs"] = std::move(remote);
    if (auto caches = blob_cache_metrics(); !caches.empty()) totals["blob_caches"] = std::move(caches);
    if (auto prefetch = prefetch_metrics(); !prefetch.empty()) totals["prefetch"] = std::move(prefetch);
    return totals;
  }
  FERRY_ASSIGN(std::string name, sub_name(sub));
  for (const auto& image : fs_.images()) {
    if (image->name == name) return metrics_.image(image->slot);
  }
  return Error{ENOENT, "no image is mounted at '" + sub + "'"};
}

}  // namespace ferry::daemon
