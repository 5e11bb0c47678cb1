// ferryctl: operator tool for Ferry. See command.h for how subcommands are added.
//
// Exit status: 0 done, 1 the command failed (one line on stderr says why), 2 the command line
// is wrong (CLI11's message and a pointer to --help).
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "common/build_info.h"
#include "tools/ferryctl/cli.h"
#include "tools/ferryctl/command.h"
#include "tools/ferryctl/manager_client.h"

int main(int argc, char** argv) {
  using namespace ferry::ctl;
  try {
    CLI::App app{
        "ferryctl: operate Ferry: the daemons ferry-snapshotter runs, their mounts, records, metrics and\n"
        "upgrades (through its system API socket), or hold one daemon's state by hand (supervisor)."};
    app.set_version_flag("--version,-V", std::string("ferryctl ") + ferry::build_info::kVersion +
                                             " (commit " + ferry::build_info::kGitCommit + ", built " +
                                             ferry::build_info::kBuildTime + ", " +
                                             ferry::build_info::kProfile + ")");
    app.require_subcommand(1);
    // Lets `ferryctl daemons --socket X` work as well as `ferryctl --socket X daemons`.
    app.fallthrough();

    GlobalOptions global;
    global.socket = kDefaultSystemSocket;
    app.add_option("--socket", global.socket,
                   "ferry-snapshotter's system API socket (its [system] address); the environment variable "
                   "FERRY_SYSTEM_SOCKET overrides the default")
        ->type_name("PATH")
        ->envname(kSystemSocketEnv)
        ->capture_default_str();
    app.footer(
        "Exit status: 0 done; 1 the command failed (one line on stderr says why); 2 wrong command line.\n"
        "Talking to the manager needs access to its socket (root, or the socket's owner).\n"
        "Every command has --help. Operations guide: docs/operations.md.");

    std::vector<Command> commands;
    commands.push_back(add_daemons_command(app, global));
    commands.push_back(add_records_command(app, global));
    commands.push_back(add_upgrade_command(app, global));
    commands.push_back(add_mount_command(app, global));
    commands.push_back(add_umount_command(app, global));
    commands.push_back(add_list_command(app, global));
    commands.push_back(add_metrics_command(app, global));
    commands.push_back(add_supervisor_command(app));

    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      // --help and --version arrive here too, with a success code.
      app.exit(e);
      return e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success) ? 0 : 2;
    }
    for (const auto& command : commands) {
      if (command.app->parsed()) return command.run();
    }
    return 2;  // unreachable: require_subcommand(1)
  } catch (const std::exception& e) {
    // Only allocation failures and the like get here; commands report their errors themselves.
    std::fprintf(stderr, "ferryctl: error: %s\n", e.what());
    return 1;
  }
}
