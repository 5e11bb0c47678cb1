// ferry-snapshotter: runs the manager and containerd's snapshots API in the foreground until
// SIGTERM/SIGINT.
#include <signal.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <filesystem>

#include "common/build_info.h"
#include "common/guarded_main.h"
#include "common/log.h"
#include "http/http_server.h"
#include "http/json_errors.h"
#include "manager/config.h"
#include "manager/daemon_manager.h"
#include "manager/metrics.h"
#include "manager/mount_ops.h"
#include "manager/store.h"
#include "manager/system_api.h"
#include "snapshotter/grpc_service.h"
#include "snapshotter/manager_mounter.h"
#include "snapshotter/snapshotter.h"

namespace ferry::manager {
namespace {

int fail(const std::string& message) {
  std::fprintf(stderr, "ferry-snapshotter: error: %s\n", message.c_str());
  if (spdlog::default_logger()) spdlog::error("{}", message);
  return 1;
}

// Logs go to stderr and to <log dir>/ferry-snapshotter.log.
Status init_logging(const ManagerConfig& config) {
  auto level = spdlog::level::from_str(config.log.level);
  if (level == spdlog::level::off && config.log.level != "off") {
    return Error{EINVAL, "[log] level: unknown level '" + config.log.level + "'"};
  }
  const std::string file = config.log_dir() + "/ferry-snapshotter.log";
  FERRY_TRY(log::make_private_file(file));
  std::shared_ptr<spdlog::logger> logger;
  try {
    std::vector<spdlog::sink_ptr> sinks = {std::make_shared<spdlog::sinks::stderr_sink_mt>(),
                                           std::make_shared<spdlog::sinks::basic_file_sink_mt>(file, false)};
    logger = std::make_shared<spdlog::logger>("ferry-snapshotter", sinks.begin(), sinks.end());
  } catch (const spdlog::spdlog_ex& e) {
    return Error{EIO, "cannot open log file '" + file + "': " + e.what()};
  }
  logger->set_level(level);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %n[%P]: %v");
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(std::move(logger));
  return {};
}

std::string default_ferryd() {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "/usr/bin/ferryd";
  return (self.parent_path() / "ferryd").string();
}

struct Options {
  std::string config_file;
  std::string root;
  std::string log_level;
};

int run(const Options& opt) {
  ManagerConfig config;
  if (!opt.config_file.empty()) {
    auto loaded = load_config(opt.config_file);
    if (!loaded) return fail(loaded.error().message);
    config = std::move(*loaded);
  }
  if (!opt.root.empty()) config.root = opt.root;
  if (!opt.log_level.empty()) config.log.level = opt.log_level;
  if (auto st = validate(config); !st) return fail(st.error().message);
  if (auto st = make_dirs(config.root); !st)
    return fail("root '" + config.root + "' is unusable: " + st.error().message);
  if (::access(config.root.c_str(), R_OK | W_OK | X_OK) != 0) {
    return fail("root '" + config.root + "' is not writable: " + std::strerror(errno));
  }
  if (auto st = make_dirs(config.log_dir()); !st) return fail("[log] dir: " + st.error().message);
  if (auto st = init_logging(config); !st) return fail(st.error().message);

  // Signals are taken synchronously by the main thread (sigwait); every thread started below
  // inherits the mask, so none of them is interrupted.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  // The system socket first: a second manager on the same socket must stop here, before it
  // touches the records or the daemons of the first one.
  std::atomic<SystemApi*> api_ptr{nullptr};
  std::unique_ptr<http::HttpServer> system_server;
  if (config.system.enable) {
    auto server =
        http::HttpServer::listen_unix(config.system.address, [&api_ptr](const http::HttpRequest& r) {
          SystemApi* api = api_ptr.load();
          if (api == nullptr) return http::json_error(503, "NotReady", "the manager is starting up");
          return api->handle(r);
        });
    if (!server) return fail("[system] address: " + server.error().message);
    system_server = std::move(*server);
  }

  auto store = ManagerStore::open(config.db_path());
  if (!store) return fail(store.error().message);
  std::string binary = config.daemon.nydusd_path.empty() ? default_ferryd() : config.daemon.nydusd_path;
  if (auto saved = (*store)->setting("nydusd_path"); saved && saved->has_value() && !(**saved).empty()) {
    binary = **saved;  // chosen by an upgrade: it wins over the configuration
  }
  // containerd's snapshots API: its socket before any daemon is touched, like the system API's.
  auto snapshots = snapshotter::Snapshotter::open(**store, config.snapshots_dir());
  if (!snapshots) return fail(snapshots.error().message);
  auto grpc_server = snapshotter::GrpcServer::start(config.address, *snapshots);
  if (!grpc_server) return fail("address: " + grpc_server.error().message);

  ManagerMetrics metrics;
  auto manager = DaemonManager::create(config, binary, **store, metrics);
  if (!manager) return fail(manager.error().message);
  spdlog::info("ferry-snapshotter {} starting: root '{}', mode {}, policy {}, ferryd '{}'",
               build_info::kVersion, config.root, to_string(config.daemon_mode),
               to_string(config.daemon.recover_policy), binary);
  (*manager)->reattach_all();
  // Ferry images' daemons: only now, with the recorded daemons found again, so a container's
  // Prepare never starts a second ferryd for an image whose daemon is being re-attached.
  snapshotter::ManagerFerryMounter ferry_mounter(**manager, config);
  snapshots->set_ferry_mounter(&ferry_mounter);

  SystemApi api(**manager);
  api_ptr.store(&api);
  std::unique_ptr<http::HttpServer> metrics_server;
  if (!config.metrics.address.empty()) {
    auto server = http::HttpServer::listen_tcp(
        config.metrics.address, [&api](const http::HttpRequest& r) { return api.handle_metrics_only(r); });
    if (!server) {
      grpc_server->reset();
      snapshots->set_ferry_mounter(nullptr);
      system_server.reset();
      (*manager)->shutdown();
      return fail("[metrics] address: " + server.error().message);
    }
    metrics_server = std::move(*server);
  }
  spdlog::info("ready: snapshots API on '{}', system API on '{}'{}", config.address,
               config.system.enable ? config.system.address : "(disabled)",
               metrics_server ? ", metrics on " + metrics_server->endpoint() : "");

  int sig = 0;
  while (sigwait(&stop_signals, &sig) != 0) {
  }
  spdlog::info("{} received: stopping; daemons keep serving", strsignal(sig));
  // Servers first (they wait for requests in progress), then the manager.
  metrics_server.reset();
  grpc_server->reset();
  snapshots->set_ferry_mounter(nullptr);
  system_server.reset();
  api_ptr.store(nullptr);
  (*manager)->shutdown();
  manager->reset();
  spdlog::info("stopped");
  spdlog::default_logger()->flush();
  return 0;
}

}  // namespace
}  // namespace ferry::manager

namespace {

int cli_main(int argc, char** argv) {
  CLI::App app{
      "ferry-snapshotter: containerd's snapshotter for Ferry (containerd.services.snapshots.v1 on the unix\n"
      "socket `address`, default /run/ferry/ferry-grpc.sock; see docs/containerd.md) and the manager of\n"
      "ferryd daemons: starts them for image mounts, watches them, fails them over after a crash (or\n"
      "restarts them, per recover_policy) and hot-upgrades them on request. Runs in the foreground until\n"
      "SIGTERM/SIGINT; daemons keep serving after it stops."};
  app.set_version_flag("--version,-V", std::string("ferry-snapshotter ") + ferry::build_info::kVersion +
                                           " (commit " + ferry::build_info::kGitCommit + ")");
  ferry::manager::Options opt;
  app.add_option("--config,-c", opt.config_file,
                 "TOML configuration file (without it: embedded defaults, root /var/lib/ferry, system socket "
                 "/run/ferry/system.sock, ferryd next to this binary)");
  app.add_option("--root", opt.root, "Overrides the configuration's root directory");
  app.add_option("--log-level,-l", opt.log_level,
                 "Overrides [log] level: trace, debug, info, warn, error or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  app.footer(
      "Logs go to stderr and to <log dir>/ferry-snapshotter.log (<log dir>: [log] dir, default "
      "<root>/logs);\n"
      "each daemon logs to <log dir>/<daemon id>.log. System API: docs/manager-api.md.");
  app.failure_message([](const CLI::App* /*app*/, const CLI::Error& e) {
    return std::string("ferry-snapshotter: error: ") + e.what() + " (see ferry-snapshotter --help)\n";
  });
  CLI11_PARSE(app, argc, argv);
  return ferry::manager::run(opt);
}

}  // namespace

int main(int argc, char** argv) {
  return ferry::guarded_main("ferry-snapshotter", [&] { return cli_main(argc, argv); });
}
