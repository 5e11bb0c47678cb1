// ferryctl: operator tool for Ferry. See command.h for how subcommands are added.
#include <cstdio>
#include <exception>
#include <vector>

#include "tools/ferryctl/cli.h"
#include "tools/ferryctl/command.h"

int main(int argc, char** argv) {
  try {
    CLI::App app{"ferryctl: operate Ferry daemons (ferryd) by hand"};
    app.require_subcommand(1);
    std::vector<ferry::ctl::Command> commands;
    commands.push_back(ferry::ctl::add_supervisor_command(app));

    CLI11_PARSE(app, argc, argv);
    for (const auto& command : commands) {
      if (command.app->parsed()) return command.run();
    }
    return 2;  // unreachable: require_subcommand(1)
  } catch (const std::exception& e) {
    // Only allocation failures and the like get here; commands report their errors themselves.
    std::fprintf(stderr, "ferryctl: %s\n", e.what());
    return 1;
  }
}
