// Process-wide logging setup. Modules log through spdlog's default logger.
#pragma once

#include <string>

#include "common/result.h"

namespace ferry::log {

// Configures the default logger: level is one of trace|debug|info|warn|error|off; an empty
// file logs to stderr. Returns an error naming the bad level or the unopenable file.
Status init(const std::string& level, const std::string& file, const std::string& name);

}  // namespace ferry::log
