// `ferryctl daemons [--json]`: GET /api/v1/daemons, one line per daemon.
#include <iostream>
#include <memory>

#include "tools/ferryctl/command.h"
#include "tools/ferryctl/manager_client.h"
#include "tools/ferryctl/table.h"

namespace ferry::ctl {
namespace {

// A shared daemon serves several images: show each image's mountpoint rather than the
// daemon's internal FUSE root.
std::string mountpoints(const nlohmann::json& daemon) {
  auto it = daemon.find("instances");
  if (it == daemon.end() || !it->is_object() || it->empty()) return cell(daemon, "mountpoint");
  std::string out;
  for (const auto& [key, instance] : it->items()) {
    if (!out.empty()) out += ",";
    out += instance.is_object() && instance.contains("mountpoint") ? cell(instance, "mountpoint") : key;
  }
  return out;
}

int run_daemons(const GlobalOptions& global, bool as_json) {
  auto daemons = ManagerClient(global.socket).call_json("GET", "/api/v1/daemons");
  if (!daemons.ok()) return fail(daemons.error());
  if (as_json) {
    print_json(*daemons);
    return 0;
  }
  using A = Table::Align;
  Table table({{"ID"},
               {"PID", A::kRight},
               {"STATE"},
               {"VERSION"},
               {"POLICY"},
               {"FAILOVERS", A::kRight},
               {"RESTARTS", A::kRight},
               {"UPGRADES", A::kRight},
               {"MOUNTPOINT"}});
  if (daemons->is_array()) {
    for (const auto& d : *daemons) {
      table.add_row({cell(d, "id"), cell(d, "pid"), cell(d, "state"), cell(d, "version"),
                     cell(d, "recover_policy"), cell(d, "failovers"), cell(d, "restarts"),
                     cell(d, "upgrades"), mountpoints(d)});
    }
  }
  std::cout << table.render() << std::flush;
  return 0;
}

}  // namespace

Command add_daemons_command(CLI::App& parent, const GlobalOptions& global) {
  auto as_json = std::make_shared<bool>(false);
  CLI::App* sub = parent.add_subcommand("daemons", "List the daemons (ferryd processes) the manager runs");
  sub->add_flag("--json", *as_json, "Print the manager's JSON (GET /api/v1/daemons), indented");
  sub->footer(
      "Columns: ID, PID, STATE (INIT, READY, RUNNING, STOPPED as the daemon reports it; RECOVERING while a\n"
      "failover or restart runs; DEAD when policy none or recovery gave up; UNKNOWN when it is alive but "
      "its\n"
      "API does not answer), VERSION of its binary, POLICY (recover policy), how many FAILOVERS, RESTARTS "
      "and\n"
      "UPGRADES it went through, and the MOUNTPOINT(s) it serves.");
  return Command{sub, [&global, as_json] { return run_daemons(global, *as_json); }};
}

}  // namespace ferry::ctl
