// ferryd_main: the whole ferryd program (command line, daemon, API, signals) as a function, so
// that the executables are one line each: ferryd and ferryd-next (src/daemon/ferryd.cc), and
// test daemons that serve a decorated filesystem (tests/daemon).
#pragma once

#include "daemon/daemon.h"

namespace ferry::daemon {

// Runs ferryd with `argv`; returns the process exit status. `decorate` (empty for ferryd)
// wraps the filesystem the FUSE server serves (see FilesystemDecorator).
int ferryd_main(int argc, char** argv, const FilesystemDecorator& decorate = {});

}  // namespace ferry::daemon
