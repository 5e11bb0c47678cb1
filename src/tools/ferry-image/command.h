// How ferry-image's subcommands plug into main.cc: each adds itself to the CLI11 app and returns
// the function to run when it was chosen (the same shape as ferryctl's commands).
#pragma once

#include <functional>

#include "tools/ferryctl/cli.h"

namespace ferry::image_tool {

struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;  // the process exit status
};

// `ferry-image create`: tar layers -> bootstrap + blobs, JSON summary on stdout.
Command add_create_command(CLI::App& parent);
// `ferry-image inspect BOOTSTRAP [--tree]`: blobs, chunk statistics, optionally the tree.
Command add_inspect_command(CLI::App& parent);
// `ferry-image check BOOTSTRAP --blob-dir DIR`: verifies every blob and chunk.
Command add_check_command(CLI::App& parent);

}  // namespace ferry::image_tool
