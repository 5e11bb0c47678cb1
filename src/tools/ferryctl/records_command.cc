// `ferryctl records [--daemon ID] [--limit N] [--json]`: GET /api/v1/daemons/records.
#include <fmt/core.h>

#include <iostream>
#include <memory>

#include "http/http_client.h"
#include "tools/ferryctl/command.h"
#include "tools/ferryctl/manager_client.h"
#include "tools/ferryctl/table.h"

namespace ferry::ctl {
namespace {

struct RecordsOptions {
  std::string daemon;
  int limit = 1000;
  bool json = false;
};

std::string pid_cell(const nlohmann::json& record, const char* key) {
  auto it = record.find(key);
  if (it != record.end() && it->is_number() && it->get<int64_t>() == 0) return "-";  // not applicable
  return cell(record, key);
}

std::string duration_cell(const nlohmann::json& record) {
  auto it = record.find("duration_ms");
  if (it == record.end() || !it->is_number()) return "-";
  const double ms = it->get<double>();
  if (ms == 0) return "-";  // not applicable (a start, a death)
  return fmt::format("{:.1f}", ms);
}

int run_records(const GlobalOptions& global, const RecordsOptions& options) {
  std::string path = "/api/v1/daemons/records?limit=" + std::to_string(options.limit);
  if (!options.daemon.empty()) path += "&daemon=" + http::url_encode(options.daemon);
  auto records = ManagerClient(global.socket).call_json("GET", path);
  if (!records.ok()) return fail(records.error());
  if (options.json) {
    print_json(*records);
    return 0;
  }
  using A = Table::Align;
  Table table({{"TIME"},
               {"DAEMON"},
               {"EVENT"},
               {"OLD-PID", A::kRight},
               {"NEW-PID", A::kRight},
               {"MS", A::kRight},
               {"OK"},
               {"DETAIL"}});
  if (records->is_array()) {
    for (const auto& r : *records) {
      table.add_row({cell(r, "time"), cell(r, "daemon_id"), cell(r, "event"), pid_cell(r, "old_pid"),
                     pid_cell(r, "new_pid"), duration_cell(r), cell(r, "ok"), cell(r, "detail")});
    }
  }
  std::cout << table.render() << std::flush;
  return 0;
}

}  // namespace

Command add_records_command(CLI::App& parent, const GlobalOptions& global) {
  auto options = std::make_shared<RecordsOptions>();
  CLI::App* sub = parent.add_subcommand(
      "records",
      "Show what happened to the daemons: starts, deaths, failovers, restarts, upgrades, failures");
  sub->add_option("--daemon", options->daemon, "Only the records of this daemon id")->type_name("ID");
  sub->add_option("--limit", options->limit, "At most the N newest records (printed oldest first)")
      ->type_name("N")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  sub->add_flag("--json", options->json, "Print the manager's JSON (GET /api/v1/daemons/records), indented");
  sub->footer(
      "Columns: TIME (UTC), DAEMON id, EVENT (start, death, failover, restart, upgrade, rollback, failure,\n"
      "reattach, stop), OLD-PID and NEW-PID (- when not applicable), MS the action took, OK, DETAIL.\n"
      "The records are durable: they survive a restart of the manager.");
  return Command{sub, [&global, options] { return run_records(global, *options); }};
}

}  // namespace ferry::ctl
