// ferryd's command line and process life (ferryd_main, daemon/ferryd_main.h): serves read-only
// EROFS container images through its own kernel FUSE engine, with a nydusd-compatible control
// API, and hands its state and FUSE fd to a supervisor so that a successor can take over
// without the mount noticing.
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/build_info.h"
#include "common/guarded_main.h"
#include "common/log.h"
#include "common/unique_fd.h"
#include "daemon/api.h"
#include "daemon/daemon.h"
#include "daemon/daemon_config.h"
#include "daemon/event_waiter.h"
#include "daemon/ferryd_main.h"
#include "daemon/fuse_workers.h"
#include "daemon/scheduling.h"
#include "fuse/transport/fuse_session.h"
#include "http/error_status.h"
#include "http/http_server.h"

namespace ferry::daemon {
namespace {

struct CliOptions {
  std::string mountpoint;
  std::string bootstrap;
  std::string config;
  std::string apisock;
  std::string id;
  std::string supervisor;
  std::string failover_policy = "resend";
  bool upgrade = false;
  unsigned threads = 4;
  std::string log_level = "info";
  std::string log_file;
};

std::string version_text() {
  return std::string("ferryd ") + build_info::package_version() + " (commit " + build_info::kGitCommit +
         ", built " + build_info::kBuildTime + ", " + build_info::kProfile + ")";
}

bool g_logging_to_file = false;

// The end of a planned hand-over. The workers hold no request and have left their loop
// (quiesced, not joined), the API is answered and closed, the log is flushed: nothing this
// process still owns (image mappings, buffers, the daemon's objects) needs more than the
// kernel's release at exit. Running their destructors here took 0.2-1.1 ms with 100 images on
// 2 CPUs, inside the window where the successor serves alone and its readers share those CPUs
// with this teardown, and the supervisor waits for this exit to end the upgrade.
[[noreturn]] void leave_without_teardown() {
  spdlog::shutdown();
  std::fflush(nullptr);
  std::_Exit(0);
}

// The exit status of a daemon that refused its input (see fail()). CLI11's own usage errors
// keep CLI11's statuses.
constexpr int kExitRefused = 2;

// One line on stderr; the log file (if any) gets it too. The exit status tells a supervisor
// whose fault it was: kExitRefused when the input was refused (the errors an API would answer
// with a 4xx: an image that is not EROFS, a config naming an unknown backend, a missing file),
// 1 for anything else. ferry-snapshotter answers the first with a 4xx carrying this line.
int fail(const Error& e) {
  std::fprintf(stderr, "ferryd: error: %s\n", e.message.c_str());
  if (g_logging_to_file) spdlog::error("{}", e.message);
  const int status = http::http_status_for_errno(e.code);
  return status >= 400 && status < 500 ? kExitRefused : 1;
}

std::string absolute(const std::string& path) {
  std::string p = std::filesystem::absolute(path).lexically_normal().string();
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

// True when something accepts connections on the unix socket at `path`.
bool socket_answers(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (!fd || path.size() >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;  // NOLINT: sockaddr API
}

// nydusd's rule, which nydus-snapshotter's failover relies on: an earlier daemon's FUSE mount
// is still live and its API socket is dead, so this process must not mount on top of it.
bool earlier_daemon_left_its_mount(const CliOptions& o) {
  if (o.apisock.empty() || !fuse::is_fuse_mountpoint(o.mountpoint)) return false;
  struct stat st {};
  if (::lstat(o.apisock.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return false;
  return !socket_answers(o.apisock);
}

int run_fuse(const CliOptions& opt, const FilesystemDecorator& decorate) {
  if (auto st = log::init(opt.log_level, opt.log_file, "ferryd"); !st.ok()) return fail(st.error());
  g_logging_to_file = !opt.log_file.empty();
  auto waiter = EventWaiter::create({SIGTERM, SIGINT, SIGHUP});
  if (!waiter.ok()) return fail(waiter.error());
  FuseWorkers::install_wakeup_signal();
  ::signal(SIGPIPE, SIG_IGN);

  DaemonOptions d;
  d.id = opt.id;
  d.mountpoint = absolute(opt.mountpoint);
  d.bootstrap = opt.bootstrap.empty() ? "" : absolute(opt.bootstrap);
  d.apisock = opt.apisock.empty() ? "" : absolute(opt.apisock);
  d.supervisor = opt.supervisor.empty() ? "" : absolute(opt.supervisor);
  d.failover_policy = opt.failover_policy;
  d.threads = opt.threads;
  if (!opt.config.empty()) {
    std::ifstream in(opt.config);
    if (!in) return fail(errno_error(errno != 0 ? errno : ENOENT, "cannot read config '" + opt.config + "'"));
    std::stringstream ss;
    ss << in.rdbuf();
    d.config_json = ss.str();
    if (auto cfg = parse_backend_config(d.config_json); !cfg.ok()) {
      return fail(std::move(cfg).error().context("config '" + opt.config + "'"));
    }
  }
  if (opt.bootstrap.empty() && opt.apisock.empty()) {
    return fail(
        Error{EINVAL, "without --bootstrap the daemon is shared and needs --apisock to receive images"});
  }
  bool wait_for_takeover = opt.upgrade;
  if (!opt.upgrade && earlier_daemon_left_its_mount(opt)) {
    spdlog::warn(
        "'{}' is still a live FUSE mount of an earlier daemon whose API socket '{}' is dead: "
        "not mounting on top; waiting in INIT for a takeover",
        d.mountpoint, d.apisock);
    wait_for_takeover = true;
  }

  Daemon daemon(d, *waiter, decorate);
  std::unique_ptr<http::HttpServer> api;
  if (!d.apisock.empty()) {
    auto server = http::HttpServer::listen_unix(d.apisock, make_api_handler(daemon));
    if (!server.ok()) return fail(std::move(server).error().context("API socket"));
    api = std::move(*server);
  }
  if (!wait_for_takeover) {
    if (auto st = daemon.mount(); !st.ok()) return fail(st.error());
    if (auto st = daemon.start(); !st.ok()) {
      (void)daemon.shutdown();
      return fail(st.error());
    }
  } else {
    // After the API listens (a supervisor may already be calling takeover): the worker threads
    // are made now rather than inside the failover's start.
    daemon.prepare_workers();
    // A successor started at low priority stays there until it starts serving (start()): its
    // loading, takeover and waiting take no CPU from the daemon that serves and its readers.
    spdlog::info("{} waiting in INIT for a takeover (API '{}')", version_text(), d.apisock);
  }

  while (true) {
    int sig = waiter->wait();
    if (sig != 0) {
      spdlog::info("received signal {}: stopping and unmounting", sig);
      if (auto st = daemon.shutdown(); !st.ok()) {
        spdlog::error("{}", st.error().message);
        return 1;
      }
      spdlog::info("stopped");
      return 0;
    }
    if (daemon.exit_requested()) {
      // Nothing is served here any more; the successor's workers and their readers need the CPUs
      // more than this process's teardown does.
      yield_cpu_for_exit();
      if (api) api->drain(std::chrono::seconds(2));  // the answer to "exit" goes out first
      api.reset();                                   // joins its threads, removes the socket file
      spdlog::info("exited; the mount at '{}' stays", d.mountpoint);
      leave_without_teardown();
    }
    if (daemon.connection_lost()) {
      spdlog::warn("the FUSE connection of '{}' went away (unmounted or aborted)", d.mountpoint);
      (void)daemon.shutdown();
      return 0;
    }
  }
}

int cli_main(int argc, char** argv, const FilesystemDecorator& decorate) {
  CLI::App app{
      "ferryd: serves read-only EROFS container images (Nydus RAFS v6) through kernel FUSE, with a\n"
      "nydusd-compatible HTTP API, and survives its own crash or upgrade by handing its state and\n"
      "/dev/fuse fd to a supervisor.\n"
      "Exit status: 0 stopped, 1 failed, 2 refused its input (image, config or options; the reason is the\n"
      "last 'ferryd: error:' line on stderr)."};
  app.set_version_flag("--version,-V", version_text());
  app.require_subcommand(1);
  CliOptions opt;
  auto* fuse =
      app.add_subcommand("fuse", "Mount at a directory and serve in the foreground until SIGTERM/SIGINT.");
  fuse->add_option("--mountpoint,-M", opt.mountpoint, "Directory to mount at")->required();
  fuse->add_option(
      "--bootstrap,-B", opt.bootstrap,
      "The EROFS image (metadata) to serve at the root. Without it the daemon is shared: an empty "
      "read-only root where images are attached through the API");
  fuse->add_option(
      "--config,-C", opt.config,
      "nydusd JSON config naming the blob backend: "
      "{\"device\":{\"backend\":{\"type\":\"localfs\",\"config\":{\"blob_file\":P}}}} or {... \"dir\": D}, "
      "or \"type\":\"registry\" with {\"host\":H,\"repo\":R,...}: chunks fetched when first read, through "
      "lib/ferry/ferry-registry.so beside bin/ (keys: docs/api.md)");
  fuse->add_option("--apisock,-A", opt.apisock, "Unix socket for the HTTP API (created mode 0600)");
  auto* id = fuse->add_option("--id", opt.id, "Daemon id, recorded in saved state");
  auto* sup = fuse->add_option("--supervisor", opt.supervisor,
                               "Unix socket of the supervisor that holds this daemon's state and FUSE fd");
  id->needs(sup);
  sup->needs(id);
  fuse->add_flag("--upgrade", opt.upgrade, "Mount nothing; wait in INIT for a takeover from the supervisor");
  fuse->add_option("--failover-policy", opt.failover_policy,
                   "After a takeover from a dead daemon: 'resend' asks the kernel to resend the requests it "
                   "had read and not answered; 'none' leaves them waiting")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "resend"}));
  fuse->add_option("--thread-num,-T", opt.threads, "Worker threads serving FUSE requests")
      ->capture_default_str()
      ->check(CLI::Range(1U, 256U));
  fuse->add_option("--log-level,-l", opt.log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  fuse->add_option("--log-file,-L", opt.log_file, "Write the log to this file instead of stderr");
  app.failure_message([](const CLI::App* /*app*/, const CLI::Error& e) {
    return std::string("ferryd: error: ") + e.what() + " (see ferryd --help)\n";
  });
  CLI11_PARSE(app, argc, argv);
  return run_fuse(opt, decorate);
}

}  // namespace

int ferryd_main(int argc, char** argv, const FilesystemDecorator& decorate) {
  return guarded_main("ferryd", [&] { return cli_main(argc, argv, decorate); });
}

}  // namespace ferry::daemon
