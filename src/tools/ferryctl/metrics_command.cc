// `ferryctl metrics`: GET /metrics, printed as served (Prometheus text).
#include <iostream>

#include "tools/ferryctl/command.h"
#include "tools/ferryctl/manager_client.h"

namespace ferry::ctl {

Command add_metrics_command(CLI::App& parent, const GlobalOptions& global) {
  CLI::App* sub = parent.add_subcommand("metrics", "Print the manager's Prometheus metrics (GET /metrics)");
  sub->footer(
      "ferry_daemons{state=...}, ferry_events_total{event=...}, ferry_recovery_duration_ms (histogram per\n"
      "failover, restart, upgrade, rollback), ferry_manager_start_time_seconds. The same text is served on\n"
      "[metrics] address (TCP) when configured, for Prometheus to scrape.");
  return Command{sub, [&global] {
                   auto text = ManagerClient(global.socket).call("GET", "/metrics");
                   if (!text.ok()) return fail(text.error());
                   std::cout << *text;
                   if (!text->empty() && text->back() != '\n') std::cout << '\n';
                   std::cout << std::flush;
                   return 0;
                 }};
}

}  // namespace ferry::ctl
