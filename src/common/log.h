// Process-wide logging setup. Modules log through spdlog's default logger.
#pragma once

#include <string>

#include "common/result.h"

namespace ferry::log {

// Configures the default logger: level is one of trace|debug|info|warn|error|off; an empty
// file logs to stderr, a file is made private first (make_private_file). Returns an error
// naming the bad level or the unopenable file.
Status init(const std::string& level, const std::string& file, const std::string& name);

// Creates `path` mode 0600 when missing and makes an existing one 0600: what a log file must
// be before anything is written to it (logs name images, registries and paths).
Status make_private_file(const std::string& path);

}  // namespace ferry::log
