// `ferryctl mount MOUNTPOINT BOOTSTRAP [--config FILE | --blob FILE | --blob-dir DIR]`:
// POST /api/v1/mounts; prints the daemon id.
#include <fmt/core.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include "tools/ferryctl/command.h"
#include "tools/ferryctl/manager_client.h"

namespace ferry::ctl {
namespace {

struct MountOptions {
  std::string mountpoint;
  std::string bootstrap;
  std::string config_file;
  std::string blob_file;
  std::string blob_dir;
  int timeout_s = 120;
};

Result<nlohmann::json> read_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Error{errno != 0 ? errno : EIO, "cannot read --config " + path + ": " + std::strerror(errno)};
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json config = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) {
    return Error{EINVAL,
                 "--config " + path +
                     " is not a JSON object (expected a nydusd config such as "
                     "{\"device\":{\"backend\":{\"type\":\"localfs\",\"config\":{\"blob_file\":\"...\"}}}})"};
  }
  return config;
}

nlohmann::json localfs_config(const char* key, const std::string& value) {
  return {{"device", {{"backend", {{"type", "localfs"}, {"config", {{key, value}}}}}}}};
}

int run_mount(const GlobalOptions& global, const MountOptions& options) {
  nlohmann::json request{{"mountpoint", absolute_path(options.mountpoint)},
                         {"bootstrap", absolute_path(options.bootstrap)}};
  if (!options.config_file.empty()) {
    auto config = read_config(options.config_file);
    if (!config.ok()) return fail(config.error());
    request["config"] = std::move(*config);
  } else if (!options.blob_file.empty()) {
    request["config"] = localfs_config("blob_file", absolute_path(options.blob_file));
  } else if (!options.blob_dir.empty()) {
    request["config"] = localfs_config("dir", absolute_path(options.blob_dir));
  }
  // Starting a daemon includes its FUSE mount and first answer: allow for a loaded host.
  auto answer =
      ManagerClient(global.socket)
          .call_json("POST", "/api/v1/mounts", request.dump(), std::chrono::seconds(options.timeout_s));
  if (!answer.ok()) return fail(answer.error());
  fmt::print("{}\n", cell(*answer, "daemon_id"));
  return 0;
}

}  // namespace

Command add_mount_command(CLI::App& parent, const GlobalOptions& global) {
  auto options = std::make_shared<MountOptions>();
  CLI::App* sub = parent.add_subcommand(
      "mount",
      "Mount an EROFS image (RAFS v6 bootstrap) at a directory through the manager; prints the daemon id");
  sub->add_option("MOUNTPOINT", options->mountpoint, "An existing, unused directory")->required();
  sub->add_option("BOOTSTRAP", options->bootstrap, "The image's metadata file (bootstrap)")->required();
  auto* config = sub->add_option("--config", options->config_file,
                                 "nydusd JSON config naming the blob backend, sent as it is")
                     ->type_name("FILE");
  auto* blob = sub->add_option("--blob", options->blob_file, "The image's blob file (localfs backend)")
                   ->type_name("FILE");
  auto* blob_dir = sub->add_option("--blob-dir", options->blob_dir,
                                   "A directory holding the image's blobs by digest (localfs backend)")
                       ->type_name("DIR");
  config->excludes(blob)->excludes(blob_dir);
  blob->excludes(config)->excludes(blob_dir);
  blob_dir->excludes(config)->excludes(blob);
  sub->add_option("--timeout", options->timeout_s, "Seconds to wait for the daemon to come up")
      ->type_name("SECONDS")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  sub->footer(
      "Paths are made absolute. Without --config/--blob/--blob-dir no config is sent (an image whose data\n"
      "is all in the bootstrap). The recover policy of the daemon is the manager's ([daemon] "
      "recover_policy).\n"
      "Undo with `ferryctl umount MOUNTPOINT`.");
  return Command{sub, [&global, options] { return run_mount(global, *options); }};
}

}  // namespace ferry::ctl
