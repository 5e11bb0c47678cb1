// ferry-image: makes and examines Ferry images (docs/image-format.md).
//
// Exit status: 0 done, 1 the command failed (one line on stderr says why), 2 the command line
// is wrong.
#include <clocale>
#include <cstdio>
#include <string>
#include <vector>

#include "common/build_info.h"
#include "common/guarded_main.h"
#include "tools/ferry-image/command.h"

int main(int argc, char** argv) {
  return ferry::guarded_main("ferry-image", [&] {
    using namespace ferry::image_tool;
    // Tar names are bytes; a UTF-8 locale makes libarchive hand PAX (UTF-8) names over unchanged.
    if (std::setlocale(LC_CTYPE, "C.UTF-8") == nullptr) std::setlocale(LC_CTYPE, "");
    CLI::App app{
        "ferry-image: build Ferry images from OCI tar layers and examine them.\n"
        "A Ferry image is an EROFS bootstrap (the merged tree of all layers) plus blobs named by\n"
        "their sha256 that hold the file data in chunks, deduplicated and compressed\n"
        "(docs/image-format.md)."};
    app.set_version_flag("--version,-V", std::string("ferry-image ") + ferry::build_info::kVersion +
                                             " (commit " + ferry::build_info::kGitCommit + ", " +
                                             ferry::build_info::kProfile + ")");
    app.require_subcommand(1);
    app.footer(
        "Exit status: 0 done; 1 the command failed (one line on stderr says why); 2 wrong command line.\n"
        "Every command has --help.");
    std::vector<Command> commands;
    commands.push_back(add_create_command(app));
    commands.push_back(add_inspect_command(app));
    commands.push_back(add_check_command(app));
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      app.exit(e);
      return e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success) ? 0 : 2;
    }
    for (const auto& command : commands) {
      if (command.app->parsed()) return command.run();
    }
    return 2;
  });
}
