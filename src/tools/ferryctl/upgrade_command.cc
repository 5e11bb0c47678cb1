// `ferryctl upgrade PATH [--version V]`: PUT /api/v1/nydusd/upgrade, one line per daemon.
#include <fmt/core.h>

#include <chrono>
#include <memory>

#include "tools/ferryctl/command.h"
#include "tools/ferryctl/manager_client.h"

namespace ferry::ctl {
namespace {

struct UpgradeOptions {
  std::string binary;
  std::string version;
  int timeout_s = 600;
  bool json = false;
};

int run_upgrade(const GlobalOptions& global, const UpgradeOptions& options) {
  nlohmann::json request{{"nydusd_path", absolute_path(options.binary)}};
  if (!options.version.empty()) request["version"] = options.version;
  // Daemons are upgraded one at a time, each waiting for its successor to be READY: the whole
  // call takes as long as the slowest daemons together.
  auto answer = ManagerClient(global.socket)
                    .call_json("PUT", "/api/v1/nydusd/upgrade", request.dump(),
                               std::chrono::seconds(options.timeout_s));
  if (!answer.ok()) return fail(answer.error());
  if (options.json) {
    print_json(*answer);
    return 0;
  }
  const auto& daemons = answer->contains("daemons") ? (*answer)["daemons"] : nlohmann::json::array();
  if (!daemons.is_array() || daemons.empty()) {
    fmt::print("no daemon was running; new daemons will run {}\n", request["nydusd_path"].get<std::string>());
    return 0;
  }
  for (const auto& d : daemons) {
    const auto ms = d.value("duration_ms", 0.0);
    fmt::print("{}: pid {} -> {} in {:.1f} ms\n", cell(d, "id"), cell(d, "old_pid"), cell(d, "new_pid"), ms);
  }
  return 0;
}

}  // namespace

Command add_upgrade_command(CLI::App& parent, const GlobalOptions& global) {
  auto options = std::make_shared<UpgradeOptions>();
  CLI::App* sub = parent.add_subcommand(
      "upgrade", "Hot-upgrade every daemon to another ferryd binary, one at a time, without unmounting");
  sub->add_option("PATH", options->binary, "The new ferryd binary (made absolute; it must run on this host)")
      ->required();
  sub->add_option("--version", options->version,
                  "Refuse unless `PATH --version` prints this version (a guard against the wrong file)")
      ->type_name("V");
  sub->add_option("--timeout", options->timeout_s, "Seconds to wait for the whole upgrade")
      ->type_name("SECONDS")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  sub->add_flag("--json", options->json, "Print the manager's JSON answer, indented");
  sub->footer(
      "The manager first checks that PATH exists, is executable and answers --version (with V if given);\n"
      "otherwise nothing changes. Then, daemon by daemon: save its state, start PATH --upgrade, take the\n"
      "live FUSE connection over, start, stop the old process. Output: one line per daemon,\n"
      "\"ID: pid OLD -> NEW in MS ms\". On failure the failing daemon keeps its old binary (or gets it\n"
      "back: rollback), daemons already upgraded stay upgraded, the error is printed and the exit status\n"
      "is 1; see `ferryctl records` and `ferryctl daemons` for where each daemon stands.");
  return Command{sub, [&global, options] { return run_upgrade(global, *options); }};
}

}  // namespace ferry::ctl
