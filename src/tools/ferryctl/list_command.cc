// `ferryctl list [--json]`: GET /api/v1/mounts.
#include <iostream>
#include <memory>

#include "tools/ferryctl/command.h"
#include "tools/ferryctl/manager_client.h"
#include "tools/ferryctl/table.h"

namespace ferry::ctl {

Command add_list_command(CLI::App& parent, const GlobalOptions& global) {
  auto as_json = std::make_shared<bool>(false);
  CLI::App* sub = parent.add_subcommand("list", "List the mounts made through the manager");
  sub->add_flag("--json", *as_json, "Print the manager's JSON (GET /api/v1/mounts), indented");
  sub->footer("Columns: MOUNTPOINT, BOOTSTRAP (the image), DAEMON (its id in `ferryctl daemons`).");
  return Command{sub, [&global, as_json] {
                   auto mounts = ManagerClient(global.socket).call_json("GET", "/api/v1/mounts");
                   if (!mounts.ok()) return fail(mounts.error());
                   if (*as_json) {
                     print_json(*mounts);
                     return 0;
                   }
                   Table table({{"MOUNTPOINT"}, {"BOOTSTRAP"}, {"DAEMON"}});
                   if (mounts->is_array()) {
                     for (const auto& m : *mounts) {
                       table.add_row({cell(m, "mountpoint"), cell(m, "bootstrap"), cell(m, "daemon_id")});
                     }
                   }
                   std::cout << table.render() << std::flush;
                   return 0;
                 }};
}

}  // namespace ferry::ctl
