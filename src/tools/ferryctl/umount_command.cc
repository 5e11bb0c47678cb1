// `ferryctl umount MOUNTPOINT`: DELETE /api/v1/mounts?mountpoint=...
#include <chrono>
#include <memory>

#include "http/http_client.h"
#include "tools/ferryctl/command.h"
#include "tools/ferryctl/manager_client.h"

namespace ferry::ctl {

Command add_umount_command(CLI::App& parent, const GlobalOptions& global) {
  auto mountpoint = std::make_shared<std::string>();
  CLI::App* sub = parent.add_subcommand("umount", "Remove a mount made through the manager (ferryctl mount)");
  sub->add_option("MOUNTPOINT", *mountpoint, "The directory given to `ferryctl mount` (made absolute)")
      ->required();
  sub->footer(
      "A dedicated daemon is stopped (it unmounts); for a shared daemon only this image is detached.\n"
      "Prints nothing on success.");
  return Command{
      sub, [&global, mountpoint] {
        const std::string path = "/api/v1/mounts?mountpoint=" + http::url_encode(absolute_path(*mountpoint));
        // Stopping a daemon waits for its in-flight requests and its unmount.
        auto answer = ManagerClient(global.socket).call("DELETE", path, {}, std::chrono::seconds(60));
        return answer.ok() ? 0 : fail(answer.error());
      }};
}

}  // namespace ferry::ctl
