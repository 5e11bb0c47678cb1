// How ferryctl's subcommands plug into main.cc: each one adds itself to the CLI11 app and
// returns the function to run when it was chosen. Adding a command = one add_*_command()
// declared here, defined in its own file, and one line in main.cc.
#pragma once

#include <functional>

#include "tools/ferryctl/cli.h"

namespace ferry::ctl {

struct Command {
  CLI::App* app = nullptr;   // the subcommand, to test whether it was chosen
  std::function<int()> run;  // returns the process exit status
};

// `ferryctl supervisor`: hold one daemon's state and /dev/fuse fd by hand.
Command add_supervisor_command(CLI::App& parent);

}  // namespace ferry::ctl
