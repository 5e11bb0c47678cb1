// How ferryctl's subcommands plug into main.cc: each one adds itself to the CLI11 app and
// returns the function to run when it was chosen. Adding a command = one add_*_command()
// declared here, defined in its own file, and one line in main.cc.
//
// Commands that talk to ferry-snapshotter read the global options (--socket) only when they
// run, i.e. after parsing; `global` outlives every command (main owns it).
#pragma once

#include <functional>
#include <string>

#include "tools/ferryctl/cli.h"

namespace ferry::ctl {

struct Command {
  CLI::App* app = nullptr;   // the subcommand, to test whether it was chosen
  std::function<int()> run;  // returns the process exit status
};

// Options given before (or, for commands without their own --socket, after) the subcommand.
struct GlobalOptions {
  std::string socket;  // ferry-snapshotter's system API socket
};

// `ferryctl supervisor`: hold one daemon's state and /dev/fuse fd by hand.
Command add_supervisor_command(CLI::App& parent);
// `ferryctl daemons`: the manager's daemons as a table or JSON.
Command add_daemons_command(CLI::App& parent, const GlobalOptions& global);
// `ferryctl records`: the manager's event records (deaths, failovers, upgrades...).
Command add_records_command(CLI::App& parent, const GlobalOptions& global);
// `ferryctl upgrade PATH`: hot-upgrade every daemon to another ferryd binary.
Command add_upgrade_command(CLI::App& parent, const GlobalOptions& global);
// `ferryctl mount MOUNTPOINT BOOTSTRAP`: mount an image through the manager.
Command add_mount_command(CLI::App& parent, const GlobalOptions& global);
// `ferryctl umount MOUNTPOINT`: remove a mount made through the manager.
Command add_umount_command(CLI::App& parent, const GlobalOptions& global);
// `ferryctl list`: the manager's mounts.
Command add_list_command(CLI::App& parent, const GlobalOptions& global);
// `ferryctl metrics`: the manager's Prometheus metrics, as served.
Command add_metrics_command(CLI::App& parent, const GlobalOptions& global);

}  // namespace ferry::ctl
